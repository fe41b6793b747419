"""``interlock budget`` on hostile input (issue 24, items 12 and 16).

A record past its deadline, a record too big to hold, a reference math-verify cannot read and an id that is no
string each get an error that names them; the other records of the batch are still evaluated. The governors
replay a trace in time linear in its length (the text grows in place; the line and box scans are incremental).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from interlock.monitor.budgets import (
    Policy,
    RepeatedBoxed,
    TraceRecord,
    WhitespaceTokenizer,
    boxed_answers,
    evaluate,
    evaluate_record,
    normalise_latex,
    parse_policies,
    read_records,
    replay_governors,
    tokenize_records,
)
from interlock.monitor.budgets.evaluate import DEFAULT_RECORD_SECONDS
from interlock.monitor.budgets.records import DEFAULT_MAX_RECORD_BYTES
from interlock.monitor.chunks import Chunk
from interlock.monitor.governor import Governor
from interlock.monitor.governors import LoopGuard
from interlock.monitor.governors.loop_guard import find_repeated_line

from tests.test_budget_eval import FIXES, RIGHT, record

WS = WhitespaceTokenizer()
ROOT = Path(__file__).resolve().parent.parent


class Slow(Governor):
    """Takes 10 ms a chunk: a trace of 1,000 chunks takes 10 s."""

    name = "slow"

    def on_chunk(self, ctx: object, chunk: Chunk) -> None:
        time.sleep(0.01)


def test_a_record_past_its_deadline_is_named_and_the_rest_is_evaluated() -> None:
    slow = Policy("slow", lambda: [Slow()])
    recs = [record("long", "word " * 1000), record("short", RIGHT[:40])]
    started = time.perf_counter()
    report = evaluate(recs, [slow], tokenizer=WS, chunk_tokens=1, record_seconds=0.3)
    assert time.perf_counter() - started < 8  # far less than the 10 s the long one would take
    long, short = report.records
    assert long["id"] == "long" and long["error"] == (
        "record 'long': evaluating it took more than 0.3 s (the per-record deadline, --record-seconds); left out")
    assert "error" not in short and short["policies"]["slow"]["reason"] == "complete"
    assert report.record_errors == [long["error"]]
    (uncapped, row) = report.policies
    assert uncapped["traces"] == row["traces"] == 1  # the record left out is in no figure
    assert report.to_dict()["record_errors"] == [long["error"]]
    assert DEFAULT_RECORD_SECONDS == 120.0


def test_a_reference_math_verify_cannot_read_is_an_error_not_a_wrong_answer() -> None:
    out = evaluate_record(record("q", "It is \\boxed{4}.", reference="???"), parse_policies(["cap:5"]))
    assert out["error"] == ("record 'q': math-verify cannot read the reference '???' (no expression in it): its "
                            "answers cannot be scored; left out")
    assert "correct" not in out
    good = evaluate_record(record("r", "It is \\boxed{4}.", reference="4"), parse_policies(["cap:5"]))
    assert "error" not in good and good["correct"] is True


def _write(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_an_id_that_is_no_string_is_named_not_cut_to_its_first_element(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", [{"id": [7, 8], "text": RIGHT, "reference": "4"},
                                         {"id": 12, "text": RIGHT, "reference": "4"},
                                         {"id": {"a": 1}, "text": RIGHT, "reference": "4"}])
    bad, good, worse = read_records(path)
    assert str(bad) == f"{path}:1: field 'id' must be a string or an integer, got list [7, 8]"
    assert isinstance(good, TraceRecord) and good.id == "12"
    assert str(worse) == f"{path}:3: field 'id' must be a string or an integer, got dict {{'a': 1}}"


def test_a_record_over_the_size_limit_is_named_without_being_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with path.open("w") as f:
        f.write(json.dumps({"id": "a", "text": RIGHT, "reference": "4"}) + "\n")
        f.write('{"id": "big", "reference": "4", "text": "' + "x " * 600_000 + '"}\n')
        f.write(json.dumps({"id": "b", "text": FIXES, "reference": "4"}) + "\n")
    size = len('{"id": "big", "reference": "4", "text": "' + "x " * 600_000 + '"}')
    a, big, b = read_records(path, max_record_bytes=1_000_000)
    assert str(big) == (f"{path}:2: the record is {size:,} bytes, over the limit of 1,000,000 "
                        "(--max-record-mb): left out")
    assert isinstance(a, TraceRecord) and isinstance(b, TraceRecord) and (a.id, b.id) == ("a", "b")
    assert DEFAULT_MAX_RECORD_BYTES == 4 * 1024 * 1024


def _budget_rss(path: Path) -> tuple[int, int, str, str]:
    """Exit code, peak RSS (KiB), stdout and stderr of `interlock budget` over ``path`` in a fresh process."""
    code = ("import resource, sys; from interlock.monitor.cli import main; "
            f"rc = main(['budget', {str(path)!r}, '-p', 'cap:100', '-p', 'loop', '-p', 'boxed:2', '--tokenizer', "
            "'whitespace', '--workers', '1', '--json']); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return done.returncode, int(done.stderr.splitlines()[-1]), done.stdout, done.stderr


def test_a_50_mb_trace_beside_good_records_loses_nothing_and_memory_stays_bounded(tmp_path: Path) -> None:
    good = [{"id": "a", "text": RIGHT, "reference": "4"}, {"id": "b", "text": FIXES, "reference": "4"}]
    small = _write(tmp_path / "small.jsonl", good)
    big = tmp_path / "big.jsonl"
    with big.open("w") as f:
        f.write(json.dumps(good[0]) + "\n")
        f.write('{"id": "huge", "reference": "4", "text": "')
        for _ in range(50):
            f.write("So 2 + 2 = 4. " * 75_000)  # 1 MB
        f.write('"}\n')
        f.write(json.dumps(good[1]) + "\n")
    assert big.stat().st_size > 50_000_000
    base_code, base_rss, base_out, _ = _budget_rss(small)
    code, rss, out, err = _budget_rss(big)
    assert (base_code, code) == (0, 1)
    size = len('{"id": "huge", "reference": "4", "text": "') + 50 * len("So 2 + 2 = 4. " * 75_000) + len('"}')
    assert f"error: {big}:2: the record is {size:,} bytes, over the limit of 4,194,304 (--max-record-mb): left out" \
        in err
    (dataset,) = json.loads(out)["datasets"]
    (base,) = json.loads(base_out)["datasets"]
    assert dataset["traces"] == 2 and dataset["policies"] == base["policies"]  # the good records, as alone
    assert rss - base_rss < 40 * 1024, (base_rss, rss)  # the big line was never held whole


# -- linear replay: incremental scans give what full scans give ----------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(pieces=st.lists(st.sampled_from(["\\boxed{4}", "\\boxed{", "{x}", "}", " ok.", "\\fbox{3}", "}}", "a"]),
                       max_size=30), times=st.integers(1, 3))
def test_repeated_boxed_stops_where_a_full_rescan_would(pieces: list[str], times: int) -> None:
    text = "".join(pieces)
    chunks = [Chunk(p) for p in pieces]
    stop = replay_governors([RepeatedBoxed(times)], "q", text, chunks=chunks)
    # what a full rescan of the text at every chunk finds
    expected = None
    for i in range(len(pieces)):
        prefix = "".join(pieces[:i + 1])
        counts: dict[str, int] = {}
        for answer in boxed_answers(prefix):
            key = normalise_latex(answer.text)
            counts[key] = counts.get(key, 0) + 1
        if any(n >= times for n in counts.values()):
            expected = len(prefix)
            break
    assert (stop.reason == "governor") == (expected is not None)
    if expected is not None:
        assert stop.chars == expected


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(st.sampled_from(["The same line again.\n", "Another line here.\n", "x\n", "The same",
                                       " line again.\n", "short\n"]), max_size=25))
def test_the_loop_guard_counts_lines_as_a_full_scan_would(lines: list[str]) -> None:
    guard = LoopGuard(nudge=None, force_answer=False, min_repeats=99, min_char_run=10_000)
    text = "".join(lines)
    stop = replay_governors([guard], "q", text, chunks=[Chunk(p) for p in lines])
    expected = None
    for i in range(len(lines)):
        prefix = "".join(lines[:i + 1])
        if find_repeated_line(prefix, max_repeats=guard.max_line_repeats, min_chars=guard.min_line_chars):
            expected = len(prefix)
            break
    assert (stop.reason == "governor") == (expected is not None)
    if expected is not None:
        assert stop.chars == expected


def test_records_read_line_by_line_keep_their_text_exactly(tmp_path: Path) -> None:
    text = "Line one.\u2028Still line one.\r\nThen \\boxed{4}."
    path = _write(tmp_path / "t.jsonl", [{"id": "a", "text": text, "reference": "4"}])
    (rec,) = read_records(path)
    assert isinstance(rec, TraceRecord) and rec.text == text
    assert tokenize_records([rec], WS)[0].starts is not None


def test_a_line_that_is_not_utf8_is_an_error_for_that_line_only(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    good = json.dumps({"id": "b", "text": RIGHT, "reference": "4"}) + "\n"
    path.write_bytes(b'{"id": "a", "text": "\xff", "reference": "4"}\n' + good.encode())
    bad, good = read_records(path)
    assert str(bad) == f"{path}:1: not UTF-8 (byte 22 of the line: invalid start byte)"
    assert isinstance(good, TraceRecord) and good.id == "b"
