"""``interlock replay``'s stdout belongs to the command (issue 24, items 15 and 16).

A verifier that prints (from Python, or straight to file descriptor 1 as C code does) cannot forge or corrupt
``replay --json``: while checks run, everything but the command's own output goes to stderr, in this process and
in the worker processes. A verifier that forks a long-lived process cannot keep a pipe reading ``--json`` open.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from interlock import Step, Verifier, register_verifier, verifier
from interlock.monitor.cli.main import main

from tests.replay_support import FORGED

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}


def _replay(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interlock", "replay", *args], capture_output=True, text=True,
                          env=ENV, timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize("processes", ["0", "2"])
def test_a_printing_verifier_cannot_forge_the_json_output(tmp_path: Path, processes: str) -> None:
    path = tmp_path / "steps.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "text": "fine.\n" if i % 3 else "WRONG.\n"}) + "\n"
                            for i in range(9)))
    done = _replay([str(path), "-v", "replay_support:Chatty", "--json", "--processes", processes])
    lines = done.stdout.splitlines()
    records = [json.loads(line) for line in lines]  # every line parses
    assert [r["type"] for r in records] == ["trace"] * 9 + ["totals"]
    assert [r["id"] for r in records[:9]] == [str(i) for i in range(9)]
    totals = records[-1]
    assert (totals["traces"], totals["passed"], totals["failed"]) == (9, 6, 3)
    assert FORGED not in done.stdout
    assert done.stderr.count(FORGED) == 18 and done.stderr.count("not JSON at all") == 9
    assert done.returncode == 1


def test_a_printing_verifier_in_process_leaves_stdout_as_it_found_it(tmp_path: Path) -> None:
    """Called from Python, the command restores file descriptor 1 and sys.stdout when it returns."""
    path = tmp_path / "steps.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "fine.\n"}) + "\n")
    code = ("import sys; from interlock.monitor.cli import main; "
            f"rc = main(['replay', {str(path)!r}, '-v', 'replay_support:Chatty', '--json', '--processes', '0']); "
            "print('after', rc); sys.stdout.flush(); import os; os.write(1, b'fd1 after\\n')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    lines = done.stdout.splitlines()
    assert [json.loads(line)["type"] for line in lines[:2]] == ["trace", "totals"]
    assert lines[2:] == ["after 0", "fd1 after"]


def _kill(pidfile: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


@pytest.mark.parametrize("processes", ["0", "1"])
def test_a_forking_verifier_does_not_hold_the_output_pipe_open(tmp_path: Path, processes: str) -> None:
    pidfile = tmp_path / "grandchild.pid"
    path = tmp_path / "steps.jsonl"
    path.write_text(json.dumps({"id": "a", "text": str(pidfile)}) + "\n")
    started = time.perf_counter()
    try:
        # stdout is a pipe: communicate() returns when every process holding its write end has closed it
        with subprocess.Popen([sys.executable, "-m", "interlock", "replay", str(path), "-v", "replay_support:Forks",
                               "--json", "--processes", processes], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, env=ENV, cwd=ROOT, text=True) as proc:
            out, _ = proc.communicate(timeout=60)
        took = time.perf_counter() - started
        assert [json.loads(line)["type"] for line in out.splitlines()] == ["trace", "totals"]
        assert pidfile.exists()  # the grandchild did start, and sleeps for 20 s
        assert took < 15, took  # the pipe closed with the command, not with the grandchild
    finally:
        _kill(pidfile)



def _chatty_check(step: Step) -> None:
    print(FORGED)


@register_verifier("chatty-run")
def _chatty_run() -> Verifier:
    return verifier(_chatty_check, name="chatty-run")


def test_run_json_holds_the_result_alone(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "q", "--generator", "scripted_cli:instant", "-v", "chatty-run", "--json"])
    out, err = capsys.readouterr()
    payload = json.loads(out)  # one JSON object, nothing else
    assert payload["outcome"] == "verified" and code == 0
    assert err.count(FORGED) == len(payload["verdicts"]) == 3
