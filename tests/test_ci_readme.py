"""CI runs the README's commands as written (.ci/readme_commands.py): the commands it reads are the README's, the
exit statuses it holds a run to are the ones the code gives, and a run that breaks a promise is caught."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from interlock import Outcome

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_commands", ROOT / ".ci" / "readme_commands.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_commands_ci_runs_are_the_readmes_first_and_test_commands() -> None:
    ci = _script()
    first = ci.command_after(README, "Install and run")
    assert first.startswith("python3 -m pip install ") and first.endswith('interlock run "What is 12*7?"')
    tests = ci.command_after(README, "Run the tests")
    assert '".[hf,dev]"' in tests and tests.endswith("python3 -m pytest -q")
    assert "readme_commands.py first" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_readmes_exit_statuses_are_the_codes() -> None:
    assert _script().documented_exit_codes(README) == {o.value: o.exit_code for o in Outcome}


def test_a_run_that_breaks_a_promise_is_caught() -> None:
    ci = _script()
    codes = ci.documented_exit_codes(README)
    trace = ["12*7 = 84.\n", "✓ verified: 1 check passed · 9 tokens kept, 0 discarded · 0 interventions · 1.0 s\n"]
    assert ci.check_first(0, trace, ["interlock: converted in 20 s; cached in /c\n"], codes) == []
    assert ci.check_first(3, trace, [], codes) == ["outcome 'verified' exited 3; the README says 0"]
    bar = "Converting and de-quantizing GGUF tensors...:  45%|████▌     | 123/272 [00:01<00:01, 98.2it/s]\n"
    assert ci.check_first(0, trace, [bar] * 25, codes) == [f"25 progress-bar lines on stderr, e.g. {bar.rstrip()!r}"]
    assert ci.check_first(1, ["Traceback ...\n"], [], codes) == [
        "the run's last line is not an outcome line: 'Traceback ...' (exit status 1)"]
    budget = ["⏹ budget: stopped by a budget before the end · 512 tokens kept\n"]
    assert ci.check_first(3, budget, [], codes) == []
