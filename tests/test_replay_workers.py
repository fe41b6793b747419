"""The local engine: per-record deadlines with worker processes killed on a miss, and a streamed input whose
memory stays bounded by the concurrency, not the input's size."""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from interlock.monitor.replay.engine import ReadFailure, TraceReport, replay_stream, replay_traces
from interlock.monitor.replay.importers import ImportedTrace
from replay_support import HangsInZ3, WrongAtEnd
from support import SumVerifier

ROOT = Path(__file__).resolve().parent.parent


def _items(texts: list[str]) -> list[ImportedTrace]:
    return [ImportedTrace(id=f"t{i}", text=text, path="batch.jsonl", line=i + 1) for i, text in enumerate(texts)]


async def test_a_record_hung_in_z3_native_code_is_killed_and_reported_and_the_batch_goes_on() -> None:
    texts = ["So 1 + 1 = 2.", "Now HANG here.", "And 2 + 2 = 5.", "Then 3 + 3 = 6.", "HANG again.", "Last 4 + 4 = 8."]
    before = set(multiprocessing.active_children())  # (warm check workers other tests left are not ours)
    started = time.perf_counter()
    results = await replay_traces(_items(texts), [HangsInZ3(), SumVerifier()], processes=2, concurrency=4,
                                  timeout=3.0)
    elapsed = time.perf_counter() - started
    assert [type(r).__name__ for r in results] == ["TraceReport", "ReadFailure", "TraceReport", "TraceReport",
                                                   "ReadFailure", "TraceReport"]
    hung = results[1]
    assert isinstance(hung, ReadFailure) and hung.to_dict() == {
        "type": "error", "reason": "timeout", "id": "t1", "path": "batch.jsonl", "line": 2,
        "message": "t1: replay timed out after 3 s; its worker process was killed"}
    assert [r.passed for r in results if isinstance(r, TraceReport)] == [True, False, True, True]
    assert elapsed < 60  # two 3 s deadlines and fresh workers, not z3's minutes
    assert set(multiprocessing.active_children()) - before == set()  # every worker, killed or not, is gone


async def test_in_this_process_a_record_past_its_deadline_is_an_error_record() -> None:
    import anyio
    from interlock import verifier

    @verifier(name="slow")
    async def slow(step: object) -> None:
        if "SLOW" in str(getattr(step, "text", "")):
            await anyio.sleep(30)

    results = await replay_traces(_items(["fine.", "SLOW.", "fine again."]), [slow], processes=0, timeout=0.5)
    assert [(type(r).__name__, getattr(r, "reason", None)) for r in results] == [
        ("TraceReport", None), ("ReadFailure", "timeout"), ("TraceReport", None)]


async def test_the_stream_is_pulled_no_faster_than_the_window_allows() -> None:
    pulled = 0
    handed: list[int] = []
    most_ahead = 0

    def source() -> Iterator[ImportedTrace]:
        nonlocal pulled
        for i in range(500):
            pulled += 1
            yield ImportedTrace(id=str(i), text=f"So {i} + 1 = {i + 1}.")

    def on_result(result: TraceReport | ReadFailure) -> None:
        nonlocal most_ahead
        handed.append(int(result.id or -1))
        most_ahead = max(most_ahead, pulled - len(handed))

    count = await replay_stream(source(), [SumVerifier()], on_result=on_result, concurrency=8, processes=0)
    assert count == 500 and handed == list(range(500))
    assert most_ahead <= 2 * 8  # never more than the window held at once


def _peak_rss_kib(path: Path) -> int:
    """Peak RSS of a fresh `interlock replay` over ``path`` (results written to a file, as in production)."""
    code = ("import resource, sys; from interlock.monitor.cli import main; "
            f"rc = main(['replay', {str(path)!r}, '-v', 'replay_support:WrongAtEnd', '--processes', '0', "
            f"'-o', {str(path) + '.out.jsonl'!r}]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(0 if rc in (0, 1) else rc)")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600,
                          check=True)
    return int(done.stdout.splitlines()[-1])


def _write_corpus(path: Path, megabytes: int) -> int:
    body = "x" * 20_000
    records = megabytes * 50
    with path.open("w") as f:
        for i in range(records):
            f.write(json.dumps({"id": i, "text": ("WRONG " if i % 7 == 0 else "fine ") + body}) + "\n")
    return records


@pytest.mark.slow
def test_a_200_mb_input_streams_in_memory_bounded_by_the_concurrency_not_its_size(tmp_path: Path) -> None:
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    _write_corpus(small, 2)
    records = _write_corpus(big, 200)
    assert big.stat().st_size > 200_000_000
    base = _peak_rss_kib(small)
    peak = _peak_rss_kib(big)
    out = (tmp_path / "big.jsonl.out.jsonl").read_text().splitlines()
    assert len(out) == records and sum(not json.loads(line)["passed"] for line in out) == len(range(0, records, 7))
    # Read up front, 200 MB of records would cost several times their size; streamed, the peak barely moves.
    assert peak - base < 60 * 1024, (base, peak)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0


def test_wrong_at_end_is_one_check_per_trace() -> None:
    (report,) = WrongAtEnd().scan("a.\nb WRONG.\nc.")
    assert report.kind == "fail" and report.message == "says WRONG"


def test_the_command_kills_a_hung_record_by_default_and_reports_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    path.write_text("".join(json.dumps({"id": ident, "text": text}) + "\n" for ident, text in
                            [("a", "So 1 + 1 = 2."), ("h", "HANG"), ("b", "So 2 + 2 = 5.")]))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    done = subprocess.run([sys.executable, "-m", "interlock", "replay", str(path), "-v", "replay_support:HangsInZ3",
                           "-v", "support:SumVerifier", "--timeout", "3", "--json"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["type"], r.get("id"), r.get("passed"), r.get("reason")) for r in records[:-1]] == [
        ("trace", "a", True, None), ("error", "h", None, "timeout"), ("trace", "b", False, None)]
    assert records[1]["message"] == "h: replay timed out after 3 s; its worker process was killed"
    assert records[-1]["replay_errors"] == 1
