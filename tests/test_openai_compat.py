"""``generators.OpenAICompatible`` against a local fake server (raw asyncio sockets) that can misbehave at will:
split events at any byte, disconnect mid-stream, send garbage, answer slowly, answer 4xx/5xx."""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from interlock import Capabilities, Chunk, ConfigError, GenerationRequest, Monitor, StopReason
from interlock.generators import OpenAICompatible
from interlock.generators.errors import MalformedStream, ServerError, ServerUnavailable, StreamInterrupted
from interlock.generators.openai_compat import CONTINUE_FIELDS, DEFAULT_CONTINUE_INSTRUCTION
from interlock.generators.openai_compat.deltas import entropy_from_top

from tests.support import SumVerifier

# -- the fake server ---------------------------------------------------------------------------------------


@dataclass
class Reply:
    """How the fake server answers one request."""

    status: int = 200
    pieces: list[bytes] = field(default_factory=list)  # the body, written piece by piece
    content_type: str = "text/event-stream"
    headers: dict[str, str] = field(default_factory=dict)
    delay_first: float = 0.0  # before the first body byte (after the headers)
    delay_between: float = 0.0
    chunked: bool = False  # chunked transfer encoding (else the body ends when the connection closes)
    truncate: bool = False  # with chunked: close without the final zero-length chunk
    drop: bool = False  # close the connection without answering at all
    endless: bool = False  # after the pieces, send an event every delay_between seconds until the client leaves


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def chat_event(text: str | None = None, *, finish: str | None = None, logprobs: Any = None,
               role: bool = False) -> bytes:
    delta: dict[str, Any] = {"role": "assistant"} if role else {}
    if text is not None:
        delta["content"] = text
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return sse({"id": "x", "object": "chat.completion.chunk", "choices": [choice]})


def completion_event(text: str, *, finish: str | None = None, logprobs: Any = None) -> bytes:
    choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return sse({"id": "x", "object": "text_completion", "choices": [choice]})


DONE = b"data: [DONE]\n\n"


def chat_stream(*texts: str) -> list[bytes]:
    return [chat_event(role=True), *(chat_event(t) for t in texts), chat_event(finish="stop"), DONE]


def completion_stream(*texts: str) -> list[bytes]:
    return [*(completion_event(t) for t in texts), completion_event("", finish="stop"), DONE]


class FakeServer:
    """An HTTP/1.1 server on loopback that answers each request with the next :class:`Reply` (or the reply a
    function of the request body gives), records every request and notices when a client hangs up."""

    def __init__(self, replies: list[Reply] | Callable[[dict[str, Any]], Reply]) -> None:
        self.replies = replies
        self.seen: list[Seen] = []
        self.hangups = 0
        self.hung_up = anyio.Event()
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [s.body for s in self.seen]

    def _next(self, body: dict[str, Any]) -> Reply:
        if callable(self.replies):
            return self.replies(body)
        if not self.replies:
            return Reply(status=500, pieces=[b'{"error": {"message": "no reply scripted"}}'],
                         content_type="application/json")
        return self.replies.pop(0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode().split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in header_lines if line)}
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            body = json.loads(raw) if raw else {}
            self.seen.append(Seen(request_line.split()[1], headers, body))
            await self._answer(self._next(body), reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _answer(self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if reply.drop:
            return
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 422: "Unprocessable Entity",
                  429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}[reply.status]
        head = [f"HTTP/1.1 {reply.status} {reason}", f"Content-Type: {reply.content_type}", "Connection: close"]
        if reply.chunked:
            head.append("Transfer-Encoding: chunked")
        head += [f"{k}: {v}" for k, v in reply.headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        await writer.drain()
        if reply.delay_first and await self._client_left(reader, reply.delay_first):
            return
        for i, piece in enumerate(reply.pieces):
            if i and reply.delay_between and await self._client_left(reader, reply.delay_between):
                return
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if reply.chunked else piece)
            await writer.drain()
        while reply.endless:
            if await self._client_left(reader, reply.delay_between):
                return
            writer.write(chat_event("tick"))
            await writer.drain()
        if reply.chunked and not reply.truncate:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async def _client_left(self, reader: asyncio.StreamReader, seconds: float) -> bool:
        """Wait ``seconds``; True (and counted) when the client closed the connection meanwhile."""
        try:
            data = await asyncio.wait_for(reader.read(1), seconds)
        except TimeoutError:
            return False
        except ConnectionError:
            data = b""
        if data:
            return False
        self.hangups += 1
        self.hung_up.set()
        return True


@asynccontextmanager
async def serving(replies: list[Reply] | Callable[[dict[str, Any]], Reply]) -> AsyncIterator[FakeServer]:
    server = FakeServer(replies)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def collect(gen: OpenAICompatible, request: GenerationRequest) -> list[Chunk]:
    with anyio.fail_after(20):
        return [chunk async for chunk in gen.stream(request)]


def fast(url: str, **kwargs: Any) -> OpenAICompatible:
    """A generator with quick retries, so that fault tests take milliseconds."""
    options: dict[str, Any] = {"model": "m", "retries": 2, "backoff": 0.01, "timeout": 5.0, **kwargs}
    return OpenAICompatible(url, **options)


# -- streaming and what is sent ----------------------------------------------------------------------------


async def test_completions_stream_the_text_and_send_prompt_plus_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    async with serving([Reply(pieces=completion_stream(" 4", ".", "\n"))]) as server:
        gen = fast(server.url, endpoint="completions", temperature=0.7, top_p=0.9, seed=3, max_tokens=50)
        chunks = await collect(gen, GenerationRequest("Q: 2 + 2?\nA:", prefix=" It is", max_new_tokens=20,
                                                      stop=("\n\n",)))
    assert [c.text for c in chunks] == [" 4", ".", "\n"]
    assert all(c.logprobs is None and c.token_ids is None for c in chunks)
    assert server.seen[0].path == "/v1/completions"
    assert server.seen[0].headers["authorization"] == "Bearer sk-test"
    assert server.seen[0].headers["accept"] == "text/event-stream"
    assert server.bodies == [{"model": "m", "prompt": "Q: 2 + 2?\nA: It is", "stream": True, "temperature": 0.7,
                              "top_p": 0.9, "seed": 3, "max_tokens": 20, "stop": ["\n\n"],
                              "stream_options": {"include_usage": True}}]


async def test_chat_streams_content_and_skips_role_and_usage_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("MY_SERVER_KEY", "k2")
    usage = sse({"id": "x", "choices": [], "usage": {"completion_tokens": 2}})
    pieces = [chat_event(role=True), chat_event("Hel"), chat_event("lo"), chat_event(finish="stop"), usage, DONE]
    async with serving([Reply(pieces=pieces)]) as server:
        gen = fast(server.url, api_key_env="MY_SERVER_KEY", system_prompt="Be brief.")
        chunks = await collect(gen, GenerationRequest("Say hello", greedy=True))
    assert [c.text for c in chunks] == ["Hel", "lo"]
    assert server.seen[0].path == "/v1/chat/completions"
    assert server.seen[0].headers["authorization"] == "Bearer k2"
    assert server.bodies == [{"model": "m", "stream": True, "temperature": 0.0, "max_tokens": 1024, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}],
        "stream_options": {"include_usage": True}}]


async def test_no_key_sends_no_authorization(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with serving([Reply(pieces=chat_stream("ok"))]) as server:
        assert [c.text for c in await collect(fast(server.url), GenerationRequest("p"))] == ["ok"]
    assert "authorization" not in server.seen[0].headers


async def test_a_base_url_without_a_path_gets_v1() -> None:
    async with serving([Reply(pieces=chat_stream("ok"))]) as server:
        gen = fast(server.url.removesuffix("/v1") + "/")
        assert gen.url == server.url + "/chat/completions"
        assert [c.text for c in await collect(gen, GenerationRequest("p"))] == ["ok"]


async def test_a_server_that_ignores_stream_true_still_works() -> None:
    answer = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "whole"},
                                      "finish_reason": "stop"}]}).encode()
    async with serving([Reply(pieces=[answer], content_type="application/json")]) as server:
        assert [c.text for c in await collect(fast(server.url), GenerationRequest("p"))] == ["whole"]


async def test_events_split_at_every_byte_arrive_whole() -> None:
    wire = b"".join([chat_event(role=True), chat_event("é→"), chat_event("😀\r\n"), chat_event(finish="stop"), DONE])
    wire = wire.replace(b"\n\n", b"\r\n\r\n")  # CRLF line endings, split between CR and LF too
    pieces = [wire[i:i + 1] for i in range(len(wire))]
    async with serving([Reply(pieces=pieces, delay_between=0.0005)]) as server:
        chunks = await collect(fast(server.url), GenerationRequest("p"))
    assert "".join(c.text for c in chunks) == "é→😀\r\n"
    assert [c.text for c in chunks] == ["é→", "😀\r\n"]


async def test_chunked_bodies_are_read_too() -> None:
    wire = b"".join(completion_stream("a", "b"))
    async with serving([Reply(pieces=[wire[:7], wire[7:40], wire[40:]], chunked=True)]) as server:
        chunks = await collect(fast(server.url, endpoint="completions"), GenerationRequest("p"))
    assert [c.text for c in chunks] == ["a", "b"]


async def test_stop_strings_the_server_ignores_end_the_stream_locally() -> None:
    reply = Reply(pieces=[completion_event("a"), completion_event("b\n\nc"), completion_event("d")],
                  delay_between=0.01, endless=True)
    async with serving([reply]) as server:
        chunks = await collect(fast(server.url, endpoint="completions"), GenerationRequest("p", stop=("\n\n",)))
        with anyio.fail_after(5):
            await server.hung_up.wait()  # the rest of the stream is not waited for
    assert [c.text for c in chunks] == ["a", "b"]


# -- logprobs ----------------------------------------------------------------------------------------------


async def test_chat_logprobs_split_an_event_into_one_chunk_per_token_with_entropy() -> None:
    half, quarter = math.log(0.5), math.log(0.25)
    logprobs = {"content": [
        {"token": "Hel", "logprob": half, "top_logprobs": [{"token": "Hel", "logprob": half},
                                                            {"token": "Hi", "logprob": quarter}]},
        {"token": "lo", "logprob": -0.1, "top_logprobs": [{"token": "lo", "logprob": -0.1}]},
    ]}
    pieces = [chat_event(role=True), chat_event("Hello", logprobs=logprobs), chat_event(finish="stop")]
    async with serving([Reply(pieces=pieces)]) as server:
        gen = fast(server.url, logprobs=True, top_logprobs=2)
        assert gen.capabilities == Capabilities(logprobs=True, entropy=True, resumable=True, fork=True,
                                                tool_calls=True)
        chunks = await collect(gen, GenerationRequest("p"))
    assert server.bodies[0]["logprobs"] is True
    assert server.bodies[0]["top_logprobs"] == 2
    assert [c.text for c in chunks] == ["Hel", "lo"]
    assert [c.logprobs for c in chunks] == [(half,), (-0.1,)]
    # 0.5 and 0.25 listed, 0.25 left over: -(.5 ln .5 + .25 ln .25 + .25 ln .25)
    assert chunks[0].entropy == pytest.approx((-(0.5 * half + 0.25 * quarter + 0.25 * quarter),))
    assert chunks[1].entropy == pytest.approx((entropy_from_top([-0.1]),))


async def test_completion_logprobs_from_token_logprobs() -> None:
    logprobs = {"tokens": [" 4", "."], "token_logprobs": [-0.5, -1.5],
                "top_logprobs": [{" 4": -0.5, " 5": -1.0}, {".": -1.5}]}
    pieces = [completion_event(" 4.", logprobs=logprobs), completion_event("", finish="length")]
    async with serving([Reply(pieces=pieces)]) as server:
        gen = fast(server.url, endpoint="completions", logprobs=True)
        assert gen.capabilities.logprobs and not gen.capabilities.entropy
        chunks = await collect(gen, GenerationRequest("p"))
    assert server.bodies[0]["logprobs"] == 1
    assert [(c.text, c.logprobs, c.entropy) for c in chunks] == [(" 4", (-0.5,), None), (".", (-1.5,), None),
                                                                 ("", None, None)]
    assert chunks[-1].finish_reason == "length" and chunks[-1].n_tokens == 0  # the stop at max_tokens, said


def test_entropy_from_the_full_distribution_is_exact() -> None:
    assert entropy_from_top([math.log(0.5), math.log(0.5)]) == pytest.approx(math.log(2))
    assert entropy_from_top([0.0]) == 0.0


# -- faults ------------------------------------------------------------------------------------------------


async def test_a_disconnect_mid_stream_raises_stream_interrupted_and_is_not_retried() -> None:
    pieces = [chat_event(role=True), chat_event("one "), chat_event("two")]  # then the connection closes
    async with serving([Reply(pieces=pieces), Reply(pieces=chat_stream("again"))]) as server:
        got: list[str] = []
        with pytest.raises(StreamInterrupted, match="before it said it was done") as info:
            async for chunk in fast(server.url).stream(GenerationRequest("p")):
                got.append(chunk.text)
    assert got == ["one ", "two"]
    assert info.value.received == len("one two")
    assert len(server.seen) == 1


async def test_a_truncated_chunked_body_mid_stream_raises_stream_interrupted() -> None:
    pieces = [chat_event(role=True), chat_event("one")]
    async with serving([Reply(pieces=pieces, chunked=True, truncate=True)]) as server:
        with pytest.raises(StreamInterrupted, match="broke after 3 characters"):
            await collect(fast(server.url), GenerationRequest("p"))
    assert len(server.seen) == 1


async def test_a_connection_dropped_before_the_first_token_is_retried() -> None:
    async with serving([Reply(drop=True), Reply(pieces=[chat_event(role=True)]),  # role only, then gone
                        Reply(pieces=chat_stream("fine"))]) as server:
        chunks = await collect(fast(server.url), GenerationRequest("p"))
    assert [c.text for c in chunks] == ["fine"]
    assert len(server.seen) == 3
    assert server.bodies[0] == server.bodies[2]


async def test_connection_refused_gives_server_unavailable_after_every_retry() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gen = fast(f"http://127.0.0.1:{port}/v1", retries=2)
    with pytest.raises(ServerUnavailable, match=r"failed after 3 attempts: ConnectError") as info:
        await collect(gen, GenerationRequest("p"))
    assert info.value.attempts == 3


async def test_a_slow_first_token_within_the_timeout_is_waited_for() -> None:
    async with serving([Reply(pieces=chat_stream("late"), delay_first=0.3)]) as server:
        chunks = await collect(fast(server.url, timeout=5.0), GenerationRequest("p"))
    assert [c.text for c in chunks] == ["late"]
    assert len(server.seen) == 1


async def test_a_first_token_slower_than_the_timeout_is_retried_then_reported() -> None:
    replies = [Reply(pieces=chat_stream("late"), delay_first=3.0) for _ in range(2)]
    async with serving(replies) as server:
        with pytest.raises(ServerUnavailable, match="failed after 2 attempts: no data within the timeout"):
            await collect(fast(server.url, timeout=0.2, retries=1), GenerationRequest("p"))
    assert len(server.seen) == 2


async def test_a_stall_after_text_is_a_stream_interruption() -> None:
    async with serving([Reply(pieces=[chat_event("a"), chat_event("b")], delay_between=3.0)]) as server:
        with pytest.raises(StreamInterrupted, match="broke after 1 characters: no data within the timeout"):
            await collect(fast(server.url, timeout=0.3), GenerationRequest("p"))
    assert len(server.seen) == 1


@pytest.mark.parametrize(("wire", "error", "pattern"), [
    (b"data: {not json\n\n", MalformedStream, r"an event from .* is not JSON .*'\{not json'"),
    (sse({"object": "chat.completion.chunk"}), MalformedStream, "an event has no 'choices' list"),
    (sse({"choices": [{"index": 0, "delta": {"content": 7}}]}), MalformedStream, "text is 7, not a string"),
    (sse([1, 2]), MalformedStream, r"holds \[1, 2\], not a JSON object"),
    (chat_event("x", logprobs={"content": "bad"}), MalformedStream, "logprobs.content is 'bad', not a list"),
    (chat_event("x", logprobs={"content": [{"token": "x", "logprob": "high"}]}), MalformedStream,
     r"content\[0\].logprob is 'high', not a number"),
    (b"data: \xff\n\n", MalformedStream, "line 3 is not valid UTF-8"),
    (b'data: {"error": "out of memory"}\n\n', ServerError, "error inside the stream: out of memory"),
    (b'event: error\ndata: {"message": "overloaded"}\n\n', ServerError, "error inside the stream: overloaded"),
])
async def test_malformed_events_give_a_clear_error(wire: bytes, error: type[Exception], pattern: str) -> None:
    async with serving([Reply(pieces=[chat_event("ok"), wire, DONE])]) as server:
        got: list[str] = []
        with pytest.raises(error, match=pattern):
            async for chunk in fast(server.url).stream(GenerationRequest("p")):
                got.append(chunk.text)
    assert got == ["ok"]
    assert len(server.seen) == 1


@pytest.mark.parametrize(("status", "body", "message"), [
    (400, {"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}},
     "max_tokens is too large"),
    (401, {"error": {"message": "Incorrect API key provided"}}, "Incorrect API key provided"),
    (404, {"detail": "Model 'm' not found"}, "Model 'm' not found"),
])
async def test_4xx_raises_at_once_naming_status_and_server_message(status: int, body: Any, message: str) -> None:
    reply = Reply(status=status, pieces=[json.dumps(body).encode()], content_type="application/json")
    async with serving([reply]) as server:
        with pytest.raises(ServerError) as info:
            await collect(fast(server.url), GenerationRequest("p"))
    assert info.value.status == status
    assert info.value.server_message == message
    assert f"HTTP {status}" in str(info.value) and message in str(info.value)
    assert len(server.seen) == 1


async def test_5xx_and_429_before_the_first_token_are_retried() -> None:
    error = [b'{"error": {"message": "busy"}}']
    replies = [Reply(status=503, pieces=error, content_type="application/json"),
               Reply(status=429, pieces=error, content_type="application/json", headers={"Retry-After": "0"}),
               Reply(pieces=chat_stream("done"))]
    async with serving(replies) as server:
        chunks = await collect(fast(server.url, retries=2), GenerationRequest("p"))
    assert [c.text for c in chunks] == ["done"]
    assert len(server.seen) == 3


async def test_a_persistent_5xx_is_reported_with_its_status_after_every_retry() -> None:
    error = [b'{"error": {"message": "engine crashed"}}']
    async with serving([Reply(status=500, pieces=error, content_type="application/json") for _ in range(3)]) as server:
        with pytest.raises(ServerError, match=r"HTTP 500 Internal Server Error: engine crashed \(after 3 attempts\)"):
            await collect(fast(server.url, retries=2), GenerationRequest("p"))
    assert len(server.seen) == 3


# -- cancellation ------------------------------------------------------------------------------------------


async def test_cancelling_the_consumer_closes_the_stream_promptly() -> None:
    reply = Reply(pieces=[chat_event(role=True)], delay_between=0.02, endless=True)
    async with serving([reply]) as server:
        got: list[str] = []
        with anyio.CancelScope() as scope:
            async for chunk in fast(server.url).stream(GenerationRequest("p")):
                got.append(chunk.text)
                if len(got) == 3:
                    scope.cancel()
        assert scope.cancelled_caught
        with anyio.fail_after(5):
            await server.hung_up.wait()
    assert got == ["tick"] * 3
    assert server.hangups == 1


async def test_breaking_out_and_closing_the_stream_hangs_up() -> None:
    reply = Reply(pieces=[chat_event(role=True)], delay_between=0.02, endless=True)
    async with serving([reply]) as server:
        stream = fast(server.url).stream(GenerationRequest("p"))
        async for _ in stream:
            break
        await stream.aclose()
        with anyio.fail_after(5):
            await server.hung_up.wait()


async def test_a_zero_token_request_sends_nothing() -> None:
    async with serving([]) as server:
        assert await collect(fast(server.url), GenerationRequest("p", max_new_tokens=0)) == []
    assert server.seen == []


# -- continuing the assistant message ----------------------------------------------------------------------


async def test_auto_falls_back_to_reasking_when_the_server_rejects_continue_final_message() -> None:
    rejected = Reply(status=422, content_type="application/json", pieces=[
        b'{"detail": "Unexpected fields in the request: {\'add_generation_prompt\', \'continue_final_message\'}"}'])
    replies = [rejected, Reply(pieces=chat_stream(" more")), Reply(pieces=chat_stream(" again"))]
    async with serving(replies) as server:
        gen = fast(server.url)
        assert gen.server_continues is None
        first = await collect(gen, GenerationRequest("Solve it.", prefix="Step 1."))
        second = await collect(gen, GenerationRequest("Solve it.", prefix="Step 1. more"))
    assert [c.text for c in first] == [" more"] and [c.text for c in second] == [" again"]
    assert gen.server_continues is False
    assert server.bodies[0]["messages"] == [{"role": "user", "content": "Solve it."},
                                            {"role": "assistant", "content": "Step 1."}]
    assert {k: server.bodies[0][k] for k in CONTINUE_FIELDS} == CONTINUE_FIELDS
    reask = [{"role": "user", "content": "Solve it."}, {"role": "assistant", "content": "Step 1."},
             {"role": "user", "content": DEFAULT_CONTINUE_INSTRUCTION}]
    assert server.bodies[1]["messages"] == reask
    assert not CONTINUE_FIELDS.keys() & server.bodies[1].keys()
    assert server.bodies[2]["messages"][1] == {"role": "assistant", "content": "Step 1. more"}
    assert len(server.seen) == 3  # the third request re-asked directly


async def test_auto_keeps_continuing_once_the_server_accepted_it() -> None:
    bad = Reply(status=400, content_type="application/json", pieces=[b'{"error": {"message": "prompt too long"}}'])
    async with serving([Reply(pieces=chat_stream("x")), bad]) as server:
        gen = fast(server.url)
        await collect(gen, GenerationRequest("p", prefix="a"))
        assert gen.server_continues is True
        with pytest.raises(ServerError, match="prompt too long"):  # not mistaken for a rejection of the fields
            await collect(gen, GenerationRequest("p", prefix="ab"))
    assert len(server.seen) == 2


async def test_continue_false_always_reasks_with_the_configured_instruction() -> None:
    async with serving([Reply(pieces=chat_stream("x"))]) as server:
        gen = fast(server.url, continue_final_message=False, continue_instruction="Go on.")
        await collect(gen, GenerationRequest("p", prefix="a"))
    assert server.bodies[0]["messages"][-1] == {"role": "user", "content": "Go on."}


# -- a monitored run with a rollback -----------------------------------------------------------------------

WRONG = "1 + 1 = 2.\n2 + 2 = 5.\n"
FEEDBACK = "Wait, 2 + 2 is 4, not 5. Let me redo this step.\n"
RIGHT = "2 + 2 = 4.\nDone.\n"


def scripted_server(endpoint: str) -> Callable[[dict[str, Any]], Reply]:
    """Answers the first request with a wrong second step and any request that carries the feedback with the
    right one, word by word."""
    def reply(body: dict[str, Any]) -> Reply:
        text = body["prompt"] if endpoint == "completions" else body["messages"][-1]["content"]
        words = (RIGHT if text.endswith(FEEDBACK) else WRONG).split(" ")
        pieces = [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)]
        events = completion_stream(*pieces) if endpoint == "completions" else chat_stream(*pieces)
        return Reply(pieces=events, delay_between=0.01)
    return reply


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
async def test_a_monitored_rollback_resends_prompt_cut_prefix_and_feedback(endpoint: str) -> None:
    async with serving(scripted_server(endpoint)) as server:
        gen = fast(server.url, endpoint=endpoint, continue_final_message=True)
        with anyio.fail_after(20):
            result = await Monitor(gen, verifiers=[SumVerifier()]).run("Add up.\n")
    assert result.stop_reason is StopReason.COMPLETE
    assert result.text == "1 + 1 = 2.\n" + FEEDBACK + RIGHT
    assert [i.feedback for i in result.interventions] == [FEEDBACK]
    assert len(server.seen) == 2
    if endpoint == "completions":
        assert server.bodies[1]["prompt"] == "Add up.\n" + "1 + 1 = 2.\n" + FEEDBACK
    else:
        assert server.bodies[1]["messages"] == [{"role": "user", "content": "Add up.\n"},
                                                {"role": "assistant", "content": "1 + 1 = 2.\n" + FEEDBACK}]
        assert {k: server.bodies[1][k] for k in CONTINUE_FIELDS} == CONTINUE_FIELDS


# -- configuration -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"base_url": "localhost:8000"}, "must be an http"),
    ({"base_url": "http://h:8000/v1/chat/completions"}, "the API root such as"),
    ({"model": ""}, "model must be"),
    ({"endpoint": "responses"}, "endpoint must be"),
    ({"temperature": -1.0}, "temperature must be"),
    ({"top_p": 0.0}, "top_p must be"),
    ({"max_tokens": 0}, "max_tokens must be"),
    ({"top_logprobs": 3}, "top_logprobs needs logprobs=True"),
    ({"retries": -1}, "retries must be"),
    ({"timeout": 0.0}, "timeout and connect_timeout must be positive"),
    ({"continue_final_message": "yes"}, "continue_final_message must be"),
    ({"extra_body": {"stream": False}}, r"extra_body may not set \['stream'\]"),
])
def test_bad_configuration_is_a_clear_error(kwargs: dict[str, Any], pattern: str) -> None:
    options: dict[str, Any] = {"base_url": "http://localhost:8000/v1", "model": "m", **kwargs}
    with pytest.raises(ConfigError, match=pattern):
        OpenAICompatible(**options)


async def test_a_fork_is_a_separate_greedy_request_for_the_same_prefix() -> None:
    async with serving([Reply(pieces=completion_stream(" 9")), Reply(pieces=completion_stream(" 4"))]) as server:
        gen = fast(server.url, endpoint="completions", temperature=0.8, top_p=0.5)
        assert gen.capabilities.fork
        fork = GenerationRequest("Q:", prefix=" 2 + 2 = 4. The answer is", purpose="fork", greedy=True,
                                 max_new_tokens=5)
        main = GenerationRequest("Q:", prefix=" 2 + 2 = 4.")
        async with anyio.create_task_group() as tg:  # concurrently, on one client
            tg.start_soon(collect, gen, main)
            tg.start_soon(collect, gen, fork)
    assert sorted(server.bodies, key=lambda b: b["prompt"]) == [
        {"model": "m", "prompt": "Q: 2 + 2 = 4.", "stream": True, "temperature": 0.8, "top_p": 0.5,
         "max_tokens": 1024, "stream_options": {"include_usage": True}},
        {"model": "m", "prompt": "Q: 2 + 2 = 4. The answer is", "stream": True, "temperature": 0.0,
         "max_tokens": 5, "stream_options": {"include_usage": True}},
    ]


def test_extra_body_is_sent_and_the_key_is_not_shown() -> None:
    gen = OpenAICompatible("http://h:1/v1", "m", api_key="sk-secret", extra_body={"repetition_penalty": 1.1})
    assert gen.body(GenerationRequest("p"))["repetition_penalty"] == 1.1
    assert "sk-secret" not in repr(gen)


# -- a stop at the server's own limit ----------------------------------------------------------------------


async def test_a_stop_at_the_servers_max_tokens_marks_the_last_chunk_and_the_run_is_cut() -> None:
    from interlock import Outcome

    pieces = [chat_event(role=True), chat_event("So 3 + 4 = 7.\nThen we"), chat_event(finish="length"), DONE]
    async with serving([Reply(pieces=pieces)]) as server:
        chunks = await collect(fast(server.url), GenerationRequest("q"))
        assert [(c.text, c.finish_reason, c.n_tokens) for c in chunks] == [
            ("So 3 + 4 = 7.\nThen we", None, 1), ("", "length", 0)]
    async with serving([Reply(pieces=pieces)]) as server:
        result = await Monitor(fast(server.url), [SumVerifier()]).run("q")
    assert result.text == "So 3 + 4 = 7.\nThen we"
    assert result.stop_reason is StopReason.LENGTH and result.outcome is Outcome.CUT
    assert result.tokens.kept == 1


async def test_a_length_stop_in_the_same_event_as_text_marks_that_text() -> None:
    pieces = [chat_event(role=True), chat_event("So 3 + 4"), chat_event(" = 7.", finish="length"), DONE]
    async with serving([Reply(pieces=pieces)]) as server:
        chunks = await collect(fast(server.url), GenerationRequest("q"))
    assert [(c.text, c.finish_reason) for c in chunks] == [("So 3 + 4", None), (" = 7.", "length")]


async def test_a_normal_stop_leaves_no_marker_chunk() -> None:
    async with serving([Reply(pieces=chat_stream("So 3 + 4 = 7."))]) as server:
        chunks = await collect(fast(server.url), GenerationRequest("q"))
    assert [(c.text, c.finish_reason) for c in chunks] == [("So 3 + 4 = 7.", None)]
