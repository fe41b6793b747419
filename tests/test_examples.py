"""The examples a new user copies from run as documented and show what their docstrings promise.

Each runs in a fresh interpreter in its scripted mode (no model), exactly as the README and the docstrings say.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_example(name: str, *args: str) -> str:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_quickstart_rolls_back_the_wrong_sum_and_ends_with_the_corrected_one() -> None:
    out = run_example("quickstart.py")
    assert "[rollback at 35] '12 + 7 is 19, not 18'" in out
    assert "Wait, 12 + 7 is 19, not 18. Let me redo this step.\nSo he has 12 + 7 = 19 apples.\n" in out
    assert "12 + 7 = 18" not in out.split("Tom has 12 apples")[-1]
    # the check runs in a worker thread: how many tokens arrived before its verdict (9 at least, the wrong step's
    # and the next's) depends on the machine's load
    last = out.rstrip().rsplit("\n", 1)[-1]
    assert re.fullmatch(r"stop: complete; passed: True; tokens kept/discarded: 22/(\d+)", last), last
    assert int(last.rsplit("/", 1)[-1]) >= 9


def test_governors_example_nudges_the_loop_once_then_forces_the_answer() -> None:
    out = run_example("governors.py")
    decisions = [line for line in out.splitlines() if line.startswith("[loop_guard]")]
    assert [d.split(":")[0] for d in decisions] == ["[loop_guard] rollback", "[loop_guard] stop"]
    # the rollback saves nothing yet; the stop saves what is left of the 256-token budget
    assert decisions[0].endswith("rolling back with a nudge") and "None" not in out
    assert re.search(r"again after the nudge \(tokens saved: \d+\)$", decisions[1]), decisions[1]
    assert "Wait, I am repeating myself instead of making progress." in out
    assert "\nFinal answer:" in out
    assert "ended: governor" in out


def test_game24_example_flags_each_kind_of_error_and_corrects_the_monitored_run() -> None:
    out = run_example("game24.py")
    for heading in ("arithmetic:", "unavailable number:", "left bookkeeping:", "dead end:", "final answer:"):
        section = out.split(heading, 1)[1].lstrip().splitlines()[0]
        assert section.startswith("FAIL ["), (heading, section)
    assert "10 - 4 is 6, not 5" in out
    monitored = out.split("--- monitored run ---", 1)[1]
    assert "Answer: (10 - 4) * (13 - 9) = 24" in monitored
    assert "passed: True" in monitored


@pytest.mark.skipif(importlib.util.find_spec("reasoning_gym") is None, reason="needs reasoning-gym")
def test_zebra_example_rolls_back_the_contradiction_and_answers_what_z3_entails() -> None:
    out = run_example("zebra_constraints.py")
    assert "unique: True" in out
    assert "rollback at" in out and "(applied)" in out
    final = out.split("--- final trace ---", 1)[1]
    assert "passed: True" in final


def test_structured_example_flags_one_wrong_step_per_problem_and_rolls_the_zebra_run_back() -> None:
    out = run_example("structured.py")
    for title in ("zebra, reasoning that explores", "maze, right", "spatial map, right"):
        assert f"{title}: pass" in out
    assert "FAIL [46:64] 'Eric is in house 3': 'Eric is in house 3' contradicts clue 5 (Eric is not in the third " \
           "house)." in out
    assert "going from LEFT to DOWN is a left turn, not right." in out
    assert "the map puts Marshland Mart to the northeast of Quokka's Quilts" in out
    monitored = out.split("--- monitored zebra run ---", 1)[1]
    assert "Wait, “Eric is in house 3” contradicts clue 5 (Eric is not in the third house). Let me redo this " \
           "step.\nEric is in house 1." in monitored
    assert "passed: True" in monitored
