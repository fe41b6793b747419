"""Drafting a policy file from a written policy with a model, for a person to review.

The model (any OpenAI-compatible server) is shown the rule API and the document and asked for one Python file.
Nothing it writes is trusted or evaluated here:

1. the answer's code block is parsed (never run) and refused if it imports anything but ``interlock``, ``re``,
   ``datetime``, ``decimal``, ``fractions``, ``math``, ``collections``, ``typing`` and ``__future__``, or uses
   ``eval``, ``exec``, ``open``, ``__import__``, ``compile``, ``globals``, ``getattr``-style reflection or any
   dunder attribute;
2. then it is imported and tried in a separate Python process (isolated mode, an empty working folder, limits on
   CPU time, memory and file writes, killed at the timeout): the file must define a ``Policy`` with rules, and
   every declared tool is called once with sample arguments (against ``--state`` when given) without the policy
   itself failing. Rules that cannot decide on sample data are reported as warnings, not failures.

A rejected draft goes back to the model with the problems, up to ``attempts`` times; the draft that passes is
returned with a header that says it is a draft to review. The process limits and the static check keep a
mistaken draft from doing damage; they are not a sandbox for hostile code (the network is not cut off), which is
why the model is one you chose and the file is for review.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interlock.monitor.policies.errors import DraftError

__all__ = ["ALLOWED_IMPORTS", "Draft", "draft_policy", "extract_code", "static_problems", "trial_run"]

ALLOWED_IMPORTS = ("interlock", "re", "datetime", "decimal", "fractions", "math", "collections", "typing",
                   "__future__", "dataclasses", "itertools", "functools", "enum")
FORBIDDEN_NAMES = ("eval", "exec", "compile", "open", "__import__", "globals", "locals", "vars", "getattr",
                   "setattr", "delattr", "breakpoint", "input", "exit", "quit", "help", "memoryview")
MAX_ANSWER_CHARS = 400_000

API_GUIDE = '''You write tool-call policies for the Python library interlock. A policy file looks like this:

```python
from __future__ import annotations
from interlock.monitor.agents import ToolCall
from interlock.monitor.policies import (Policy, Refuse, RuleContext, Outcome, State, Undecided, belongs_to_user,
                                        confirmed, holds, one_of, only_after, status_is)

policy = Policy("store", description="what the agent may do")
# declare every tool: its arguments with types (str, int, float, bool, list[str], dict, X | None), writes=True if
# it changes the system
policy.tool("get_order", {"order_id": str})
policy.tool("cancel_order", {"order_id": str, "reason": str}, writes=True)

def order(state, order_id):           # the state is the system's data, read-only (JSON-like mappings and lists)
    return state["orders"].get(order_id)

@policy.rule(on="cancel_order")        # on= a tool name or a list of names; writes=True: every write tool
def only_pending(ctx: RuleContext) -> Outcome:
    """Only pending orders can be cancelled."""
    found = order(ctx.state, ctx.arguments["order_id"])
    if found is None:
        return Refuse(f"there is no order {ctx.arguments['order_id']}")
    if found["status"] != "pending":
        return Refuse(f"order {found['order_id']} is {found['status']}: only pending orders can be cancelled")
    return None                        # None allows; Undecided("why") when the rule cannot tell (it refuses)

policy.add(one_of("reason", ("no longer needed", "ordered by mistake")), on="cancel_order", name="cancel_reason")
policy.add(only_after("get_order", same=["order_id"]), on="cancel_order", name="look_before_cancel")
policy.add(confirmed(), writes=True, name="explicit_yes")   # the user's explicit yes since the last proposal
policy.add(holds("balance >= amount", balance=lambda ctx: 10.0, amount=lambda ctx: 5.0), on="cancel_order",
           name="enough_balance")          # numeric constraints, decided exactly by z3

@policy.effect("cancel_order")          # what an allowed call does to the state, so later calls see it
def cancelled(state: State, call: ToolCall) -> None:
    state.edit("orders", call.arguments["order_id"])["status"] = "cancelled"

policy.judgement("Do not give subjective recommendations.")   # rules that need judgement: listed, not checked
```

RuleContext: ctx.call (name, arguments), ctx.arguments, ctx.state, ctx.history (earlier messages and calls),
ctx.calls(*tool_names) (earlier allowed calls, each with .name, .arguments, .result), ctx.messages(role),
ctx.last_message(role). Rules run in the order they are added; the first refusal decides. Write each refusal so
the agent knows what to do instead. Use only the standard library modules re, datetime, decimal, fractions,
math, collections, typing, dataclasses, itertools, functools, enum, and interlock. No file, network or system
access, no eval/exec/getattr.'''


@dataclass(frozen=True)
class Draft:
    """A policy file that imported and ran: its text (with the review header), the trial's report, and which
    attempt produced it."""

    text: str
    report: dict[str, Any] = field(default_factory=dict)
    attempts: int = 1


def extract_code(answer: str) -> str:
    """The Python code of a model's answer: its first ```python block (or first fenced block), else the answer."""
    blocks: list[str] = re.findall(r"```(?:python|py)?[ \t]*\n(.*?)```", answer, re.S)
    if blocks:
        return max(blocks, key=lambda b: ("Policy(" in b, len(b)))
    return answer.strip() + "\n"


def static_problems(code: str) -> list[str]:
    """What keeps the code from being tried: a syntax error, an import outside :data:`ALLOWED_IMPORTS`, a
    forbidden builtin, a dunder attribute. Parsed only, never run."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return [f"the code does not parse: {exc.msg} (line {exc.lineno})"]
    except (ValueError, RecursionError) as exc:
        return [f"the code does not parse: {exc}"]
    problems: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level:
                problems.append(f"line {node.lineno}: relative imports are not allowed")
            for name in names:
                if name.split(".")[0] not in ALLOWED_IMPORTS:
                    problems.append(f"line {node.lineno}: imports {name}, which a policy may not use (allowed: "
                                    f"{', '.join(ALLOWED_IMPORTS)})")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            problems.append(f"line {node.lineno}: uses {node.id}, which a policy may not use")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("__"):
            problems.append(f"line {node.lineno}: uses the attribute {node.attr}, which a policy may not use")
    if not problems and "Policy(" not in code:
        problems.append("the code defines no Policy(...)")
    return list(dict.fromkeys(problems))


def _limits(cpu_seconds: int) -> Callable[[], None]:
    def apply() -> None:  # in the child, before it runs anything
        import resource

        for limit, value in ((resource.RLIMIT_CPU, cpu_seconds), (resource.RLIMIT_AS, 2 << 30),
                             (resource.RLIMIT_FSIZE, 1 << 20), (resource.RLIMIT_CORE, 0)):
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(limit, (value, value))

    return apply


def trial_run(code: str, *, state: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """Import the policy in ``code`` and try it in a separate, limited Python process; the trial's report
    (``{"ok": bool, "problems": [...], "rules": n, "tools": n, "calls": n, "warnings": [...]}``)."""
    with tempfile.TemporaryDirectory(prefix="interlock-draft-") as folder:
        path = Path(folder) / "draft_policy.py"
        path.write_text(code, encoding="utf-8")
        command = [sys.executable, "-I", "-B", "-c", "from interlock.monitor.policies.draft import _trial_main; "
                   "_trial_main()", str(path), str(Path(state).resolve()) if state else ""]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONIOENCODING": "utf-8", "LANG": "C.UTF-8",
               "HOME": folder}
        try:
            done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout,
                                  preexec_fn=_limits(max(1, int(timeout))) if os.name == "posix" else None,
                                  check=False)
        except subprocess.TimeoutExpired:
            return {"ok": False, "problems": [f"the trial run did not finish within {timeout:g} s"]}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines and os.name == "posix" and -done.returncode in (signal.SIGXCPU, signal.SIGKILL):
        # the CPU limit (as long as the wall-clock one) ended it first: a busy loop on a quiet machine
        return {"ok": False, "problems": [f"the trial run did not finish within {timeout:g} s"]}
    if not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"ok": False, "problems": [f"the trial run failed (exit {done.returncode}): {' | '.join(tail)}"]}
    try:
        report: dict[str, Any] = json.loads(lines[-1])
    except ValueError:
        return {"ok": False, "problems": ["the trial run's report could not be read"]}
    return report


def _sample(tp: Any) -> Any:
    import typing

    origin = typing.get_origin(tp)
    if origin is list:
        args = typing.get_args(tp)
        return [_sample(args[0]) if args else "x"]
    if origin is not None and typing.get_args(tp):  # a union: its first member
        return _sample(typing.get_args(tp)[0])
    return {str: "x", int: 1, float: 1.0, bool: True, dict: {}, list: []}.get(tp, "x")


def _trial_main() -> None:
    """The trial process: import the draft, check it defines a usable policy, try one call of each tool."""
    import anyio
    from interlock.monitor.agents.tools import ToolCall
    from interlock.monitor.policies.conversation import Message
    from interlock.monitor.policies.errors import PolicyError
    from interlock.monitor.policies.policy import load_policy
    from interlock.monitor.policies.state import State

    path, state_path = sys.argv[1], sys.argv[2]
    report: dict[str, Any] = {"ok": False, "problems": [], "warnings": []}
    try:
        policy = load_policy(path)
        state = State.load(state_path) if state_path else State({})
    except PolicyError as exc:
        report["problems"].append(str(exc).replace(path, "the draft"))
        print(json.dumps(report))
        return
    own_rules = [r for r in policy.rules if r.name not in ("known-tool", "arguments")]
    report.update(rules=len(own_rules), tools=len(policy.tools), calls=0)
    if not own_rules:
        report["problems"].append("the policy has no rules of its own")
    if not policy.tools:
        report["problems"].append("the policy declares no tools (policy.tool(name, {arguments}))")
    items: list[Any] = []
    for spec in policy.tools.values():
        if spec.writes:
            items += [Message("assistant", f"Shall I call {spec.name}?"), Message("user", "yes")]
        items.append(ToolCall(spec.name, {k: _sample(t) for k, t in spec.params.items()}))

    async def run() -> list[Any]:
        return await policy.session(state, check_timeout=10.0).run(items)

    try:
        decisions = anyio.run(run)
    except Exception as exc:
        report["problems"].append(f"checking sample calls failed: {type(exc).__name__}: {exc}")
        print(json.dumps(report))
        return
    report["calls"] = len(decisions)
    for d in decisions:
        if d.refusal is not None and d.refusal.undecided:
            report["warnings"].append(f"{d.call.name} with sample arguments: {d.reason}")
    report["ok"] = not report["problems"]
    print(json.dumps(report))


def _ask(base_url: str, model: str, messages: list[dict[str, str]], *, api_key: str | None,
         timeout: float) -> str:
    import httpx

    url = base_url.rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.post(url, json={"model": model, "messages": messages, "temperature": 0, "stream": False},
                              headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise DraftError(f"the model server {base_url} could not be reached: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise DraftError(f"the model server answered HTTP {response.status_code}: {response.text[:300]}")
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise DraftError(f"the model server's answer is not a chat completion: {response.text[:300]}") from None
    if not isinstance(content, str) or not content.strip():
        raise DraftError("the model answered nothing")
    return content[:MAX_ANSWER_CHARS]


def _header(model: str, source: str, report: dict[str, Any]) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# DRAFT policy, proposed by the model {model} from {source or 'a policy document'} on {when}",
             "# (interlock policy draft). Nothing here is trusted: review every rule, its reason and its effects",
             "# against the written policy before you use it. It imported and ran on sample calls; that is all.",
             f"# Trial: {report.get('rules', 0)} rules over {report.get('tools', 0)} tools, "
             f"{report.get('calls', 0)} sample calls checked."]
    lines += [f"# Warning from the trial: {w}" for w in report.get("warnings", [])[:20]]
    return "\n".join(lines) + "\n\n"


def draft_policy(document: str, *, base_url: str, model: str, api_key: str | None = None, tools: str = "",
                 state: str | None = None, attempts: int = 2, timeout: float = 120.0, source: str = "",
                 on_attempt: Callable[[int, str], None] | None = None) -> Draft:
    """Ask the model for a policy file implementing ``document``; return the first draft that passes the static
    check and the trial run. :class:`DraftError` when none did within ``attempts``."""
    if not document.strip():
        raise DraftError("the policy document is empty")
    ask = (f"Write the policy file for this written policy. Encode every rule that a check can decide; list the "
           f"rules that need judgement with policy.judgement(...). Answer with one ```python block.\n\n"
           f"<policy_document>\n{document}\n</policy_document>")
    if tools.strip():
        ask += f"\n\n<tools>\n{tools}\n</tools>"
    messages = [{"role": "system", "content": API_GUIDE}, {"role": "user", "content": ask}]
    problems = ""
    for attempt in range(1, attempts + 1):
        answer = _ask(base_url, model, messages, api_key=api_key, timeout=timeout)
        code = extract_code(answer)
        found = static_problems(code)
        report: dict[str, Any] = {}
        if not found:
            report = trial_run(code, state=state, timeout=timeout)
            found = list(report.get("problems", [])) if not report.get("ok") else []
        if not found:
            return Draft(_header(model, source, report) + code, report, attempt)
        problems = "; ".join(found)
        if on_attempt is not None:
            on_attempt(attempt, problems)
        messages += [{"role": "assistant", "content": answer},
                     {"role": "user", "content": f"That file cannot be used: {problems}. Fix it and answer with the "
                                                 f"whole corrected file in one ```python block."}]
    raise DraftError(f"no draft passed after {attempts} attempt(s); the last one: {problems}")
