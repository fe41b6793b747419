"""Hostile and broken input files: a clear, located error in the bad record's place, never a crash, a hang or a
silent pass; the good records of the same batch are all reported (issue 14, the file items)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from interlock import Chunk, ConfigError, Monitor, RecordedTrace, TraceFileError, TraceWriter, read_trace
from interlock.generators import Replay, Scripted
from interlock.monitor.cli import main as cli_main
from interlock.monitor.replay.importers import ImportedTrace, read_traces

ROOT = Path(__file__).resolve().parent.parent
DEEP = 100_000


def _good(ident: str, text: str = "So 1 + 1 = 2.") -> str:
    return json.dumps({"id": ident, "text": text}) + "\n"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    return subprocess.run([sys.executable, "-m", "interlock", "replay", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def _trace_file(path: Path, pieces: list[str], times: list[float] | None = None) -> Path:
    w = TraceWriter(path, prompt="p")
    for i, text in enumerate(pieces):
        w.chunk(Chunk(text), t=times[i] if times else 0.1 * i)
    w.end({"stop_reason": "complete"})
    return path


def test_one_batch_of_bad_files_reports_each_in_place_and_every_good_record(tmp_path: Path) -> None:
    """Through the command line, in one run: each bad input is a located error, the good ones all pass, exit 1."""
    deep = tmp_path / "deep.jsonl"
    deep.write_text(_good("d1") + "[" * DEEP + "]" * DEEP + "\n" + _good("d3"))
    first_broken = tmp_path / "first-broken.jsonl"
    first_broken.write_text('{"id": "x", "steps": [\n' + _good("fb2"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    nan = tmp_path / "nan.jsonl"
    nan.write_text('{"id": "n1", "text": "ok", "score": NaN}\n' + _good("n2"))
    good = tmp_path / "good.txt"
    good.write_text("We know 10 + 5 = 15.\n")
    done = _cli(str(deep), str(first_broken), str(empty), str(nan), str(good), "-v", "support:SumVerifier", "--json")
    assert done.returncode == 1, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    got = [(r["type"], r.get("id"), r.get("line"), r.get("message")) for r in records[:-1]]
    assert got == [
        ("trace", "d1", 1, None),
        ("error", None, 2, f"{deep}:2: JSON nested too deeply to read (more levels than the recursion limit allows)"),
        ("trace", "d3", 3, None),
        ("error", None, 1, f"{first_broken}:1: not valid JSON (Expecting value, column 23)"),
        ("trace", "fb2", 2, None),
        ("error", None, None, f"{empty}: empty file: it holds no traces"),
        ("error", None, 1, f"{nan}:1: not valid JSON (NaN is not a JSON number; strict JSON has no NaN or "
                           "Infinity)"),
        ("trace", "n2", 2, None),
        ("trace", "good.txt", None, None),
    ]
    assert all(r["passed"] for r in records[:-1] if r["type"] == "trace")
    totals = records[-1]
    assert (totals["traces"], totals["passed"], totals["read_errors"]) == (5, 5, 4)


def test_a_file_of_nothing_but_broken_json_is_not_read_as_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                                ) -> None:
    path = tmp_path / "records"  # no suffix: the content decides
    path.write_text('{"id": 1, "steps": ["a"\n')
    assert cli_main(["replay", str(path), "-v", "support:SumVerifier"]) == 1
    out = capsys.readouterr()
    assert f"error: {path}:1: not valid JSON (Expecting ',' delimiter, column 24); the file stops here" not in out.err
    assert f"error: {path}:1: not valid JSON (Expecting ',' delimiter, column 24)" in out.err
    assert "0 traces: 0 passed, 0 with violations, 0 undecided, 1 could not be read" in out.out


@pytest.mark.parametrize("content", ["", "   \n\n", "[]"])
def test_empty_inputs_are_errors_not_passes(tmp_path: Path, content: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(content)
    (item,) = read_traces(path)
    assert isinstance(item, TraceFileError)
    assert str(item) in (f"{path}: empty file: it holds no traces", f"{path}: the file holds no traces (no records)")


def test_a_jsonl_file_cut_mid_line_says_so_at_its_last_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    path.write_text(_good("a") + '{"id": "b", "te')
    a, b = read_traces(path)
    assert isinstance(a, ImportedTrace) and isinstance(b, TraceFileError)
    assert str(b) == (f"{path}:2: not valid JSON (Unterminated string starting at, column 13); the file stops here "
                      "without a newline: was it cut short?")


def test_a_truncated_trace_file_is_read_up_to_its_last_complete_line_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _trace_file(tmp_path / "run.trace.jsonl", ["So 1 + 1 = 2.\n", "And 2 + 2 = 5.\n", "More."])
    data = path.read_bytes()
    cut = data[: data.index(b'"text": "More.') + 12]  # a disk-level cut inside the third chunk's line
    path.write_bytes(cut)
    recorded = read_trace(path)
    assert recorded.text == "So 1 + 1 = 2.\nAnd 2 + 2 = 5.\n" and recorded.end is None
    tail = len(cut) - cut.rindex(b"\n") - 1
    assert recorded.warnings == [
        f"{path}:4: the file stops mid-line ({tail} bytes of line 4 and no newline: "
        "not valid JSON (Unterminated string starting at, column 27)); read up to line 3"]
    assert cli_main(["replay", str(path), "-v", "support:SumVerifier", "--json"]) == 1  # 2 + 2 = 5
    out = capsys.readouterr()
    record = json.loads(out.out.splitlines()[0])
    assert record["warnings"] == recorded.warnings and record["passed"] is False
    assert out.err == f"warning: {recorded.warnings[0]}\n"


@pytest.mark.parametrize(("t", "message"), [
    ("Infinity", ":2: not valid JSON (Infinity is not a JSON number; strict JSON has no NaN or Infinity)"),
    ("NaN", ":2: not valid JSON (NaN is not a JSON number; strict JSON has no NaN or Infinity)"),
    ("1e999", ":2: chunk field 't' must be a finite number, got inf"),
    # finite, yet a replay at speed 1.0 would sleep 1e300 s (issue 24, item 13): at most a week after the start
    ("1e300", ":2: chunk field 't' is 1e+300 seconds after the run started: more than 604800 (a week), which no "
              "recorded run takes"),
    ("1e9", ":2: chunk field 't' is 1e+09 seconds after the run started: more than 604800 (a week), which no "
            "recorded run takes"),
    ("-5", ":2: chunk field 't' is -5 seconds after the run started: a time cannot be negative"),
])
def test_non_finite_times_are_rejected_on_read_so_a_replay_cannot_sleep_forever(tmp_path: Path, t: str,
                                                                                 message: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"type": "header", "version": 1, "prompt": ""}\n{"type": "chunk", "text": "a", "t": ' + t
                    + "}\n")
    with pytest.raises(TraceFileError) as caught:
        Replay(path, speed=1.0)
    assert str(caught.value) == f"{path}{message}"


def test_an_event_time_out_of_bounds_is_rejected_too(tmp_path: Path) -> None:
    """An injected feedback's time comes from its event: a replay would wait for it as for a chunk."""
    path = tmp_path / "t.jsonl"
    path.write_text('{"type": "header", "version": 1, "prompt": ""}\n{"type": "chunk", "text": "a", "t": 0.1}\n'
                    '{"type": "event", "kind": "inject", "text": "Wait.", "t": 1e300}\n')
    with pytest.raises(TraceFileError) as caught:
        read_trace(path)
    assert str(caught.value) == (f"{path}:3: event field 't' is 1e+300 seconds after the run started: more than "
                                 "604800 (a week), which no recorded run takes")


def test_a_replay_of_times_made_in_code_is_bounded_too() -> None:
    recorded = RecordedTrace(prompt="", chunks=[Chunk("a"), Chunk(" b")], times=[0.0, 1e9])
    with pytest.raises(ConfigError, match=r"Replay: a recorded chunk time is 1e\+09 s; times must be finite and "
                                          r"at most 604800 s \(a week\)"):
        Replay(recorded, speed=1.0)


def test_a_non_finite_label_is_an_error_for_its_record_only(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"id": "a", "text": "t", "score": 1e999}\n' + _good("b"))
    a, b = read_traces(path)
    assert str(a) == f"{path}:1: label 'score' is inf: numbers must be finite"
    assert isinstance(b, ImportedTrace) and b.id == "b"


def test_bytes_that_are_not_utf8_are_an_error_for_their_line_only(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(_good("a").encode() + b'{"id": "b", "text": "\xff"}\n' + _good("c").encode())
    a, b, c = read_traces(path)
    assert str(b) == f"{path}:2: not UTF-8 (byte 22 of the line: invalid start byte)"
    assert [a.id, c.id] == ["a", "c"]  # type: ignore[union-attr]


# -- lone surrogates: replaced on output with U+FFFD, and the replacement recorded ----------------------------
async def test_a_lone_surrogate_from_the_model_no_longer_breaks_the_recorded_trace(tmp_path: Path) -> None:
    path = tmp_path / "run.trace.jsonl"
    result = await Monitor(Scripted(["Step one.\n", "bad \ud800 text\n", "end."]), verifiers=[]).run(
        "p", record=path)
    assert result.text == "Step one.\nbad \ud800 text\nend."  # the run itself keeps what the model wrote
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    chunks = [line for line in lines if line["type"] == "chunk"]
    assert [c["text"] for c in chunks] == ["Step one.\n", "bad \ufffd text\n", "end."]
    assert [c.get("replaced") for c in chunks] == [None, {"surrogates": 1}, None]
    end = lines[-1]
    assert end["type"] == "end" and end["text"] == "Step one.\nbad \ufffd text\nend."
    assert end["replaced"] == {"surrogates": 1} and end["replaced_total"] == {"surrogates": 2}
    assert read_trace(path).final_text() == "Step one.\nbad \ufffd text\nend."


def test_the_writer_writes_non_finite_floats_as_null_and_counts_them(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    w = TraceWriter(path, prompt="p")
    w.event({"kind": "note", "value": float("nan"), "more": [float("inf"), 1.5]})
    w.end({"stop_reason": "complete"})
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[1] == {"type": "event", "kind": "note", "value": None, "more": [None, 1.5],
                        "replaced": {"non_finite": 2}}
    assert lines[2]["replaced_total"] == {"non_finite": 2}


def test_replay_output_replaces_a_lone_surrogate_and_says_so(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"id": "s", "text": "1 + 1 = 2 \\ud800"}\n')
    assert cli_main(["replay", str(path), "-v", "support:SumVerifier", "--json"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    record: dict[str, Any] = json.loads(line)
    assert record["replaced"] == {"surrogates": 1} and record["verdicts"][0]["text"] == "1 + 1 = 2 \ufffd"


def test_a_replay_of_a_hand_made_trace_with_an_infinite_time_is_refused() -> None:
    from interlock import ConfigError, RecordedTrace

    recorded = RecordedTrace(prompt="p", chunks=[Chunk("a"), Chunk("b")], times=[0.0, float("inf")])
    with pytest.raises(ConfigError, match=r"Replay: a recorded chunk time is inf s; times must be finite"):
        Replay(recorded, speed=1.0)
