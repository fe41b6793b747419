"""The server-sent-events parser: any split of a valid stream into reads yields the same events."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock.generators.errors import MalformedStream
from interlock.generators.openai_compat.sse import ServerSentEvent, SSEDecoder, aiter_events

ENDINGS = ("\n", "\r\n", "\r")
# any text without line breaks, multi-byte characters included (surrogates cannot be encoded)
LINE_TEXT = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), max_size=12)


@dataclass
class Spec:
    data: list[str]
    event: str | None
    id: str | None
    comment: str | None


SPECS = st.builds(
    Spec,
    data=st.lists(LINE_TEXT, min_size=1, max_size=4),
    event=st.none() | LINE_TEXT.filter(bool),
    id=st.none() | LINE_TEXT.filter(lambda s: "\0" not in s),
    comment=st.none() | LINE_TEXT,
)


def serialise(specs: list[Spec], endings: list[str], bom: bool) -> tuple[bytes, list[ServerSentEvent]]:
    """The wire form of ``specs`` (each line ending taken from ``endings`` in turn) and the expected events."""
    lines: list[str] = []
    expected: list[ServerSentEvent] = []
    last_id = ""
    for spec in specs:
        if spec.comment is not None:
            lines.append(":" + spec.comment)
        if spec.event is not None:
            lines.append("event: " + spec.event)
        if spec.id is not None:
            lines.append("id: " + spec.id)
            last_id = spec.id
        lines.extend("data: " + d for d in spec.data)
        lines.append("")
        expected.append(ServerSentEvent(data="\n".join(spec.data), event=spec.event or "message", id=last_id))
    out: list[str] = []
    previous = ""
    for i, line in enumerate(lines):
        ending = endings[i % len(endings)]
        if previous == "\r" and line == "" and ending == "\n":
            ending = "\r\n"  # CR then a lone LF would read as one CRLF: the blank line would vanish
        out.append(line + ending)
        previous = ending
    return (b"\xef\xbb\xbf" if bom else b"") + "".join(out).encode("utf-8"), expected


def decode(reads: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [e for data in reads for e in decoder.feed(data)]
    events += decoder.close()
    assert not decoder.pending
    return events


def split(blob: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(blob)) for c in cuts})
    edges = [0, *points, len(blob)]
    return [blob[a:b] for a, b in itertools.pairwise(edges)]


@settings(max_examples=300, deadline=None)
@given(specs=st.lists(SPECS, max_size=6), endings=st.lists(st.sampled_from(ENDINGS), min_size=1, max_size=5),
       bom=st.booleans(), data=st.data())
def test_any_split_of_a_valid_stream_yields_the_same_events(specs: list[Spec], endings: list[str], bom: bool,
                                                            data: st.DataObject) -> None:
    blob, expected = serialise(specs, endings, bom)
    cuts = data.draw(st.lists(st.integers(0, len(blob)), max_size=len(blob) + 1), label="cuts")
    assert decode([blob]) == expected
    assert decode(split(blob, cuts)) == expected


def test_every_single_byte_split_of_an_openai_stream() -> None:
    blob = ('data: {"choices": [{"delta": {"content": "é→😀"}}]}\r\n\r\n: keep-alive\r\n'
            "data: line one\rdata: line two\r\rdata: [DONE]\n\n").encode()
    expected = [ServerSentEvent('{"choices": [{"delta": {"content": "é→😀"}}]}'),
                ServerSentEvent("line one\nline two"), ServerSentEvent("[DONE]")]
    assert decode([blob[i:i + 1] for i in range(len(blob))]) == expected


def test_cr_at_the_end_of_a_read_and_lf_at_the_start_of_the_next_are_one_line_ending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []  # not a blank line: the LF finishes the CRLF
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"\r") == [ServerSentEvent("a\nb")]


def test_fields_as_the_specification_defines_them() -> None:
    blob = (b"data\n\n"  # a field without a colon: an empty data line, dispatched as ""
            b"data:no space\ndata:  two spaces\n\n"  # one leading space is dropped, not more
            b"id: 7\nretry: 1500\nevent: error\ndata: x\n\n"
            b"id: bad\0id\nretry: soon\nfoo: ignored\ndata: y\n\n"  # NUL id and non-digit retry are ignored
            b"event: lonely\n\n")  # no data: nothing is dispatched
    assert decode([blob]) == [
        ServerSentEvent(""),
        ServerSentEvent("no space\n two spaces"),
        ServerSentEvent("x", event="error", id="7", retry=1500),
        ServerSentEvent("y", id="7", retry=1500),
    ]


def test_an_event_cut_off_by_the_end_of_the_stream_is_not_dispatched() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: complete\n\ndata: cut") == [ServerSentEvent("complete")]
    assert decoder.pending
    assert decoder.close() == []
    assert decoder.pending


def test_a_bom_split_across_reads_is_dropped_once() -> None:
    assert decode([b"\xef", b"\xbb", b"\xbfdata: \xef\xbb\xbfx\n\n"]) == [ServerSentEvent("\ufeffx")]


def test_invalid_utf8_is_an_error_naming_the_line() -> None:
    decoder = SSEDecoder()
    with pytest.raises(MalformedStream, match=r"line 2 is not valid UTF-8.*invalid start byte"):
        decoder.feed(b": fine\ndata: \xff\xfe\n\n")


def test_a_line_longer_than_the_limit_is_an_error() -> None:
    decoder = SSEDecoder(max_line_bytes=16)
    assert decoder.feed(b"data: short\n") == []
    with pytest.raises(MalformedStream, match="longer than 16 bytes"):
        decoder.feed(b"data: " + b"x" * 20)


def test_feeding_after_close_is_an_error() -> None:
    decoder = SSEDecoder()
    decoder.close()
    with pytest.raises(MalformedStream, match="after close"):
        decoder.feed(b"data: x\n\n")


async def test_aiter_events_reads_an_async_stream_of_reads() -> None:
    async def reads() -> AsyncIterator[bytes]:
        for piece in (b"da", b"ta: 1\r", b"\n\r\ndata: 2\n", b"\n"):
            yield piece

    assert [e.data async for e in aiter_events(reads())] == ["1", "2"]


def test_events_before_a_bad_line_in_the_same_read_are_delivered_first() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: ok\n\ndata: \xff\n\n") == [ServerSentEvent("ok")]
    with pytest.raises(MalformedStream, match="line 3 is not valid UTF-8"):
        decoder.feed(b"data: later\n\n")
    with pytest.raises(MalformedStream, match="line 3 is not valid UTF-8"):
        decoder.close()
