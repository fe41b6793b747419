"""``interlock policy check|show|draft`` and the conversation files it reads: exit codes, the --json records, errors
that name the file and line, a hypothesis fuzz of the line parser, and drafting with a scripted model on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock.monitor.cli.main import main
from interlock.monitor.policies import (
    NO_RESULT,
    CallEntry,
    ConversationError,
    Message,
    parse_conversation,
    read_conversation,
)
from interlock.monitor.policies.draft import extract_code, static_problems, trial_run
from interlock.monitor.proxy import serving

from tests.retail_fixture import small_retail_db
from tests.scripted_upstream import ScriptedUpstream, Turn

ROOT = Path(__file__).resolve().parent.parent
RETAIL = str(ROOT / "examples" / "policies" / "tau2_retail.py")


def write(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines),
                    encoding="utf-8")
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "db.json"
    path.write_text(json.dumps(small_retail_db()), encoding="utf-8")
    return path


COMPLIANT = [
    {"role": "user", "content": "Please cancel my order #W0000001, I no longer need it. I'm ann.lee@example.com"},
    {"name": "find_user_id_by_email", "arguments": {"email": "ann.lee@example.com"}, "result": "ann_lee_1"},
    {"name": "get_order_details", "arguments": "{\"order_id\": \"#W0000001\"}"},
    {"role": "tool", "content": "{\"status\": \"pending\"}"},
    {"role": "assistant", "content": "I will cancel order #W0000001 (reason: no longer needed). Confirm?"},
    {"role": "user", "content": "yes"},
    {"name": "cancel_pending_order", "arguments": {"order_id": "#W0000001", "reason": "no longer needed"}},
]


# -- reading conversations -----------------------------------------------------------------------------------------

def test_a_conversation_file_reads_messages_calls_and_results(tmp_path: Path) -> None:
    openai_shape = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c9", "type": "function", "function": {"name": "get_order_details",
                                                      "arguments": "{\"order_id\": \"#W0000002\"}"}}]}
    path = write(tmp_path / "c.jsonl", [*COMPLIANT, "", openai_shape,
                                         {"role": "tool", "tool_call_id": "c9", "content": "not json"}])
    conversation = read_conversation(path)
    assert [type(i).__name__ for i in conversation] == ["Message", "CallEntry", "CallEntry", "Message", "Message",
                                                        "CallEntry", "CallEntry"]
    calls = conversation.calls
    assert [(c.call.name, c.line) for c in calls] == [("find_user_id_by_email", 2), ("get_order_details", 3),
                                                      ("cancel_pending_order", 7), ("get_order_details", 9)]
    assert calls[0].result == "ann_lee_1" and calls[1].result == {"status": "pending"}
    assert calls[2].result is NO_RESULT and calls[3].result == "not json" and calls[3].call.id == "c9"
    assert calls[1].call.arguments == {"order_id": "#W0000001"}


@pytest.mark.parametrize(("line", "message"), [
    ("[1, 2]", "each line must be a JSON object, not list"),
    ("{\"role\": \"robot\", \"content\": \"hi\"}", "\"role\" must be one of user, assistant, system or tool"),
    ("{\"name\": \"\"}", "\"name\" must be a non-empty string"),
    ("{\"name\": \"a\", \"arguments\": [1]}", "arguments must be a JSON object (or a string holding one), not list"),
    ("{\"name\": \"a\", \"arguments\": \"{bad\"}", "arguments is not valid JSON"),
    ("{\"role\": \"user\", \"content\": 5}", "content must be a string, null or a list of content parts, not int"),
    ("{\"hello\": 1}", "expected a message {\"role\": ..., \"content\": ...} or a tool call"),
    ("{\"role\": \"tool\", \"content\": \"x\"}", "a tool result with no call without a result before it"),
    ("{not json", "the line is not valid JSON"),
    ("[" * 100 + "]" * 100, "nested more than 64 levels deep"),
])
def test_bad_lines_are_named_with_their_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path / "bad.jsonl", [{"role": "user", "content": "hi"}, line])
    with pytest.raises(ConversationError) as caught:
        read_conversation(path)
    assert str(caught.value).startswith(f"{path}:2: ") and message in str(caught.value)


def test_bytes_that_are_not_utf8_are_named(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"role": "user", "content": "ok"}\n{"role": "user", "content": "caf\xe9"}\n')
    with pytest.raises(ConversationError, match=r"latin\.jsonl:2: not UTF-8 \(byte 32\)"):
        read_conversation(path)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                  max_size=3), max_leaves=12)
LINE = st.fixed_dictionaries({}, optional={"role": st.sampled_from(["user", "assistant", "tool", "system", "x"]),
                                           "content": JSON, "name": JSON, "arguments": JSON, "tool_calls": JSON,
                                           "tool_call_id": JSON, "result": JSON, "error": JSON, "id": JSON})


@settings(max_examples=150, deadline=None)
@given(st.lists(LINE | JSON, max_size=6))
def test_any_json_is_read_or_refused_with_a_conversation_error(objects: list[Any]) -> None:
    try:
        conversation = parse_conversation(objects)
    except ConversationError:
        return
    for item in conversation:
        assert isinstance(item, Message | CallEntry)
        if isinstance(item, CallEntry):
            assert isinstance(item.call.name, str) and item.call.name and isinstance(item.call.arguments, dict)


# -- interlock policy check ----------------------------------------------------------------------------------------

def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interlock", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd or ROOT, check=False)


def test_check_allows_a_compliant_conversation_and_refuses_a_violation(tmp_path: Path, db: Path) -> None:
    good = write(tmp_path / "good.jsonl", COMPLIANT)
    unconfirmed = write(tmp_path / "unconfirmed.jsonl", [*COMPLIANT[:4], COMPLIANT[6]])
    done = run_cli("policy", "check", RETAIL, "--state", str(db), str(good))
    assert (done.returncode, done.stdout) == (0, f"{good}: 3 calls, all allowed\n")
    done = run_cli("policy", "check", RETAIL, "--state", str(db), str(good), str(unconfirmed), "--json")
    assert done.returncode == 1, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["file"], r["index"], r["line"], r["name"], r["allowed"]) for r in records] == [
        (str(good), 0, 2, "find_user_id_by_email", True), (str(good), 1, 3, "get_order_details", True),
        (str(good), 2, 7, "cancel_pending_order", True),
        (str(unconfirmed), 0, 2, "find_user_id_by_email", True), (str(unconfirmed), 1, 3, "get_order_details", True),
        (str(unconfirmed), 2, 5, "cancel_pending_order", False)]
    assert [r["reason"] for r in records[:5]] == [""] * 5
    assert records[5]["rule"] == "explicit_confirmation"
    assert records[5]["reason"] == ("cancel_pending_order changes the system and needs the user's explicit yes to the "
                                    "proposed action; the user's last message (\"Please cancel my order #W0000001, I "
                                    "no longer need it. I'm a...\") is not an explicit yes")
    done = run_cli("policy", "check", RETAIL, "--state", str(db), str(unconfirmed))
    assert done.returncode == 1
    assert done.stdout.splitlines()[1].startswith("  call 2 (line 5) cancel_pending_order: REFUSED by "
                                                  "explicit_confirmation: cancel_pending_order changes the system")


def test_bad_input_exits_2_and_the_other_files_are_still_checked(tmp_path: Path, db: Path) -> None:
    good = write(tmp_path / "good.jsonl", COMPLIANT)
    bad = write(tmp_path / "bad.jsonl", [COMPLIANT[0], "{\"name\": 3}"])
    done = run_cli("policy", "check", RETAIL, "--state", str(db), str(bad), str(good))
    assert done.returncode == 2
    assert f"interlock policy check: error: {bad}:2: \"name\" must be a non-empty string" in done.stderr
    assert done.stdout.splitlines()[0] == f"{good}: 3 calls, all allowed"
    assert done.stdout.splitlines()[-1] == "1 conversations, 3 calls: 3 allowed, 0 refused; 1 files could not be read"
    missing = run_cli("policy", "check", RETAIL, "--state", str(tmp_path / "nope.json"), str(good))
    assert missing.returncode == 2 and "cannot read the state file" in missing.stderr
    nopolicy = run_cli("policy", "check", str(tmp_path / "nope.py"), str(good))
    assert nopolicy.returncode == 2 and f"no policy file at {tmp_path / 'nope.py'}" in nopolicy.stderr
    broken = tmp_path / "broken.py"
    broken.write_text("from interlock.monitor.policies import Policy\np = Policy('x')\np.tool('a', {'b': set})\n",
                      encoding="utf-8")
    done = run_cli("policy", "check", str(broken), str(good))
    assert done.returncode == 2 and "importing" in done.stderr and "unsupported type" in done.stderr
    assert main(["policy", "check", RETAIL, str(good), "--timeout", "0"]) == 2


def test_show_prints_the_rules_in_order_and_what_is_left_to_judgement() -> None:
    done = run_cli("policy", "show", RETAIL)
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    rules = [line.split()[0] for line in lines[lines.index("rules (checked in this order; the first refusal "
                                                           "decides):") + 1:] if line.startswith("  ") and "[" in line]
    assert rules[:5] == ["known-tool", "arguments", "nothing_after_transfer", "authenticate_first",
                         "one_user_per_conversation"]
    assert rules[-1] == "explicit_confirmation"
    assert "left to judgement (not checked):" in lines


# -- interlock policy draft ----------------------------------------------------------------------------------------

GOOD_DRAFT = '''Here is the policy.

```python
from interlock.monitor.agents import ToolCall
from interlock.monitor.policies import Policy, Refuse, RuleContext, State, confirmed

policy = Policy("drafted")
policy.tool("get_order", {"order_id": str})
policy.tool("cancel_order", {"order_id": str}, writes=True)


@policy.rule(on="cancel_order")
def only_pending(ctx: RuleContext):
    """Only pending orders can be cancelled."""
    order = ctx.state.get("orders", {}).get(ctx.arguments["order_id"])
    if order is None:
        return Refuse("there is no such order")
    return None if order["status"] == "pending" else Refuse("only pending orders can be cancelled")


policy.add(confirmed(), writes=True, name="explicit_yes")


@policy.effect("cancel_order")
def cancelled(state: State, call: ToolCall) -> None:
    state.edit("orders", call.arguments["order_id"])["status"] = "cancelled"
```
'''


def test_the_static_check_refuses_what_a_policy_may_not_do() -> None:
    assert static_problems("import os\nfrom interlock.monitor.policies import Policy\np = Policy('x')\n") == [
        "line 1: imports os, which a policy may not use (allowed: interlock, re, datetime, decimal, fractions, "
        "math, collections, typing, __future__, dataclasses, itertools, functools, enum)"]
    assert static_problems("x = eval('1')\nPolicy(") == ["the code does not parse: '(' was never closed (line 2)"]
    assert static_problems("x = ().__class__\ny = open('f')\nPolicy('p')") == [
        "line 1: uses the attribute __class__, which a policy may not use",
        "line 2: uses open, which a policy may not use"]
    assert static_problems("x = 1") == ["the code defines no Policy(...)"]
    assert extract_code(GOOD_DRAFT).startswith("from interlock.monitor.agents import ToolCall")


def test_a_draft_that_hangs_or_fails_at_import_is_reported_not_trusted() -> None:
    hang = trial_run("from interlock.monitor.policies import Policy\nwhile True:\n    pass\n", timeout=3)
    assert hang["ok"] is False and hang["problems"] == ["the trial run did not finish within 3 s"]
    fails = trial_run("from interlock.monitor.policies import Policy\npolicy = Policy('p')\nraise ValueError('no')\n",
                      timeout=60)
    assert fails["ok"] is False and fails["problems"] == [
        "importing the draft failed: ValueError: no"]
    empty = trial_run("from interlock.monitor.policies import Policy\npolicy = Policy('p')\n", timeout=60)
    assert empty["problems"] == ["the policy has no rules of its own",
                                 "the policy declares no tools (policy.tool(name, {arguments}))"]


async def test_draft_asks_again_with_the_problems_and_writes_only_a_draft_that_runs(tmp_path: Path,
                                                                                    db: Path) -> None:
    answers = iter([Turn("```python\nimport os\nfrom interlock.monitor.policies import Policy\n"
                         "policy = Policy('x')\n```"), Turn(GOOD_DRAFT)])
    upstream = ScriptedUpstream(lambda body: next(answers))
    document = tmp_path / "policy.md"
    document.write_text("# Store policy\n\nOnly pending orders can be cancelled. Ask for a yes first.\n",
                        encoding="utf-8")
    output = tmp_path / "drafted.py"
    async with serving(upstream.app()) as url:
        done = await anyio.to_thread.run_sync(lambda: run_cli(
            "policy", "draft", str(document), "--base-url", url + "/v1", "--model", "scripted", "-o", str(output),
            cwd=tmp_path))
    assert done.returncode == 0, done.stderr
    assert "attempt 1 rejected: line 1: imports os, which a policy may not use" in done.stderr
    assert f"wrote {output} (2 rules over 2 tools, 2 trial calls checked, attempt 2)" in done.stderr
    assert len(upstream.bodies) == 2
    retry = upstream.bodies[1]["messages"]
    assert retry[0]["role"] == "system" and "policy.tool(" in retry[0]["content"]
    assert "Only pending orders can be cancelled" in retry[1]["content"]
    assert retry[-1]["content"].startswith("That file cannot be used: line 1: imports os")
    text = output.read_text(encoding="utf-8")
    assert text.startswith("# DRAFT policy, proposed by the model scripted from policy.md")
    # the draft is usable as it is, and says what it decides
    conversation = write(tmp_path / "c.jsonl", [{"role": "assistant", "content": "Cancel #W0000002?"},
                                                {"role": "user", "content": "yes"},
                                                {"name": "cancel_order", "arguments": {"order_id": "#W0000002"}}])
    checked = run_cli("policy", "check", str(output), "--state", str(db), str(conversation), "--json")
    assert checked.returncode == 1
    assert json.loads(checked.stdout)["reason"] == "only pending orders can be cancelled"
    again = run_cli("policy", "draft", str(document), "--base-url", url + "/v1", "--model", "m", "-o", str(output))
    assert again.returncode == 2 and "exists: choose another --output, or --force" in again.stderr


async def test_draft_gives_up_after_its_attempts_and_writes_nothing(tmp_path: Path) -> None:
    upstream = ScriptedUpstream(lambda body: Turn("I cannot write code."))
    document = tmp_path / "policy.md"
    document.write_text("Be nice.", encoding="utf-8")
    async with serving(upstream.app()) as url:
        done = await anyio.to_thread.run_sync(lambda: run_cli(
            "policy", "draft", str(document), "--base-url", url + "/v1", "--model", "m", "-o",
            str(tmp_path / "out.py"), "--attempts", "1", cwd=tmp_path))
    assert done.returncode == 2
    assert ("interlock policy: error: no draft passed after 1 attempt(s); the last one: the code does not "
            "parse") in done.stderr
    assert not (tmp_path / "out.py").exists()
