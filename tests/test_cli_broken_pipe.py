"""Every ``interlock`` command stops quietly when the reader of its stdout goes away (``interlock replay ... --json
| head``): exit status 0, as ``interlock run`` has done, and no traceback on stderr. Each test runs the command in a
fresh process whose stdout is a real pipe, closed by its reader before or while the command writes.

A BrokenPipeError that is not about stdout (a socket, a subprocess's pipe) is an error like any other: it is
raised, never taken for a reader that left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from interlock.monitor.cli.main import main

from tests.retail_fixture import small_retail_db

ROOT = Path(__file__).resolve().parent.parent
# Python's stdout into a pipe is block-buffered unless PYTHONUNBUFFERED is set (as in some CI and this project's
# machines): the tests run without it, as a user's shell does, and the short outputs both ways.
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, "PYTHONPATH": str(ROOT / "tests")}
RETAIL = str(ROOT / "examples" / "policies" / "tau2_retail.py")


def _into_closed_pipe(args: list[str], keep_lines: int = 0, timeout: float = 180, python: list[str] | None = None,
                      env: dict[str, str] | None = None) -> tuple[int, list[bytes], str]:
    """Run ``interlock ARGS`` with stdout a pipe whose reader reads ``keep_lines`` lines, then closes its end (with
    0, before the command has started); returns the exit status, the lines read and stderr."""
    read_end, write_end = os.pipe()
    with subprocess.Popen(python or [sys.executable, "-m", "interlock", *args], stdout=write_end,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env or ENV, cwd=ROOT) as proc:
        os.close(write_end)
        with os.fdopen(read_end, "rb") as reader:
            lines = [reader.readline() for _ in range(keep_lines)]
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    return proc.returncode, lines, err.decode("utf-8", "replace")


def _quiet(err: str) -> None:
    for word in ("Traceback", "BrokenPipe", "Broken pipe", "Exception ignored", "Errno 32"):
        assert word not in err, err


def _traces(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": str(i), "text": f"So 2 + {i} = {2 + i}.\nThen 3 + 3 = 6.\n"}) + "\n"
                            for i in range(n)), encoding="utf-8")
    return path


@pytest.mark.parametrize("processes", ["0", "2"])
@pytest.mark.parametrize("json_out", [True, False])
def test_replay_stops_quietly_when_its_reader_leaves_before_it_writes(tmp_path: Path, processes: str,
                                                                      json_out: bool) -> None:
    path = _traces(tmp_path / "t.jsonl", 5)
    code, _, err = _into_closed_pipe(["replay", str(path), "-v", "arithmetic", "--processes", processes]
                                     + (["--json"] if json_out else []))
    _quiet(err)
    assert code == 0


def test_replay_json_into_head_stops_quietly_after_the_first_line(tmp_path: Path) -> None:
    """``interlock replay ... --json | head -n 1``: the reader takes one record and leaves while the rest come."""
    path = _traces(tmp_path / "t.jsonl", 400)
    code, lines, err = _into_closed_pipe(["replay", str(path), "-v", "arithmetic", "--json", "--processes", "0"],
                                         keep_lines=1)
    assert json.loads(lines[0])["id"] == "0"
    _quiet(err)
    assert code == 0


@pytest.mark.parametrize("json_out", [True, False])
def test_run_stops_quietly_when_its_reader_leaves(json_out: bool) -> None:
    code, _, err = _into_closed_pipe(["run", "What is 2 + 2?", "--generator", "scripted_cli:instant"]
                                     + (["--json"] if json_out else []))
    _quiet(err)
    assert code == 0


@pytest.mark.parametrize("json_out", [True, False])
def test_budget_stops_quietly_when_its_reader_leaves(tmp_path: Path, json_out: bool) -> None:
    path = tmp_path / "b.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "2 + 2 = \\boxed{4}. Done.", "reference": "4"}) + "\n",
                    encoding="utf-8")
    code, _, err = _into_closed_pipe(["budget", str(path), "-p", "cap:100", "-p", "loop", "--tokenizer",
                                      "whitespace", "--workers", "1"] + (["--json"] if json_out else []))
    _quiet(err)
    assert code == 0


@pytest.mark.parametrize("json_out", [True, False])
def test_policy_check_stops_quietly_when_its_reader_leaves(tmp_path: Path, json_out: bool) -> None:
    db = tmp_path / "db.json"
    db.write_text(json.dumps(small_retail_db()), encoding="utf-8")
    talk = tmp_path / "c.jsonl"
    talk.write_text(json.dumps({"role": "user", "content": "Cancel order #W0000001. I'm ann.lee@example.com"})
                    + "\n" + json.dumps({"name": "find_user_id_by_email",
                                         "arguments": {"email": "ann.lee@example.com"}}) + "\n", encoding="utf-8")
    code, _, err = _into_closed_pipe(["policy", "check", RETAIL, "--state", str(db), str(talk), str(talk)]
                                     + (["--json"] if json_out else []))
    _quiet(err)
    assert code == 0


@pytest.mark.parametrize("unbuffered", [False, True])
@pytest.mark.parametrize("args", [["verifiers"], ["verifiers", "--json"], ["policy", "show", RETAIL], ["--help"],
                                  ["run", "--help"], ["--version"]])
def test_short_outputs_stop_quietly_when_the_reader_leaves(args: list[str], unbuffered: bool) -> None:
    """Output small enough to sit in Python's buffer fails only when it is flushed, at exit: quiet there too."""
    code, _, err = _into_closed_pipe(args, env={**ENV, "PYTHONUNBUFFERED": "1"} if unbuffered else ENV)
    _quiet(err)
    assert code == 0


def test_a_broken_pipe_that_is_not_stdout_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """stdout is fine (a file, here pytest's): a BrokenPipeError from elsewhere is not a reader that left."""
    import interlock.monitor.cli.verifiers as command

    def broken(_args: object) -> int:
        raise BrokenPipeError(32, "a socket's peer left")

    monkeypatch.setattr(command, "main", broken)
    with pytest.raises(BrokenPipeError, match="a socket's peer left"):
        main(["verifiers"])


def test_a_broken_pipe_beside_another_error_is_that_error_even_when_the_reader_left() -> None:
    """A task group that failed twice, once because the reader left and once for a real fault: the fault shows."""
    code = ("import sys, interlock.monitor.cli.verifiers as command\n"
            "def broken(_args):\n"
            "    raise ExceptionGroup('tasks', [BrokenPipeError(32, 'gone'), ValueError('a real fault')])\n"
            "command.main = broken\n"
            "from interlock.monitor.cli import main\n"
            "sys.exit(main(['verifiers']))\n")
    status, _, err = _into_closed_pipe([], python=[sys.executable, "-c", code])
    assert "ValueError: a real fault" in err
    assert status == 1
