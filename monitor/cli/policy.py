"""``interlock policy``: check conversations against a tool-call policy, show a policy, draft one from a document.

    interlock policy check POLICY --state STATE.json FILE... [--json]
    interlock policy show POLICY
    interlock policy draft policy.md --base-url URL --model M [-o FILE]

``check``: each FILE is a conversation in JSON Lines (messages and tool calls in order, results optional; see
docs/policies.md). Every call is checked in order, as if each allowed call ran (the policy models its effects on
the state). ``--json`` prints one object per call: ``{"file", "index", "line", "name", "allowed", "reason", "rule"}``
(``index`` counts the file's calls from 0; ``reason`` is "" for an allowed call). Exit code: 0 when every call is
allowed, 1 when one is refused, 2 on bad input (a file that cannot be read is named with its line, and the other
files are still checked).

``draft``: asks an OpenAI-compatible model to propose a policy file from a written policy, for a person to review;
the draft is written only once it imports and runs (in a separate, limited process).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from interlock.monitor.cli.options import add_base_url, add_model

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="policy_command", metavar="ACTION")
    check = sub.add_parser("check", help="check conversations (JSON Lines) against a policy",
                           description="Check every tool call of each conversation against the policy, in order.")
    check.add_argument("policy", metavar="POLICY", help="a policy file (file.py or file.py:NAME) or module[:NAME]")
    check.add_argument("files", nargs="+", metavar="FILE", help="conversations, one JSON object per line")
    check.add_argument("--state", metavar="STATE", help="the system's state: a JSON or YAML file (default: empty)")
    check.add_argument("--json", action="store_true", help="print one JSON object per tool call")
    check.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                       help="longest the rules of one call may take (default: the policy's, 10 s)")
    show = sub.add_parser("show", help="print a policy's tools, rules (in order), effects and judgement calls")
    show.add_argument("policy", metavar="POLICY", help="a policy file (file.py or file.py:NAME) or module[:NAME]")
    draft = sub.add_parser("draft", help="ask a model to draft a policy file from a written policy, for review",
                           description="Ask an OpenAI-compatible model to propose rules as a Python policy file. "
                                       "The draft is never trusted: it is written only once it imports and runs "
                                       "in a separate, limited process, and a person must review it.")
    draft.add_argument("document", metavar="POLICY_DOC", help="the written policy (Markdown or text)")
    add_base_url(draft, "the OpenAI-compatible server (e.g. http://localhost:8001/v1)")
    add_model(draft, "the model to ask")
    draft.add_argument("--api-key", metavar="KEY", help="bearer token (default: $OPENAI_API_KEY when set)")
    draft.add_argument("-o", "--output", default="policy_draft.py", metavar="FILE",
                       help="where to write the draft (default: policy_draft.py)")
    draft.add_argument("--force", action="store_true", help="overwrite the output file")
    draft.add_argument("--tools", metavar="FILE",
                       help="a description of the tools (their names, arguments and effects) to give the model")
    draft.add_argument("--state", metavar="STATE", help="a sample state (JSON) to try the draft's rules on")
    draft.add_argument("--attempts", type=int, default=2, metavar="N",
                       help="ask again, with the problems found, up to N times in all (default 2)")
    draft.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                       help="longest the model's answer and the trial run may each take (default 120)")


def main(args: argparse.Namespace) -> int:
    command = getattr(args, "policy_command", None)
    if command == "check":
        return _check(args)
    if command == "show":
        from interlock.monitor.policies import load_policy

        print(_printable(load_policy(args.policy).describe()))
        return 0
    if command == "draft":
        return _draft(args)
    print("usage: interlock policy {check,show,draft} ... (see interlock policy --help)", file=sys.stderr)
    return 2


def _printable(text: str) -> str:
    from interlock.monitor.textout import scrub

    return scrub(text)[0]


def _check(args: argparse.Namespace) -> int:
    import anyio
    from interlock.monitor.errors import ConfigError
    from interlock.monitor.policies import ConversationError, State, load_policy, read_conversation

    if args.timeout is not None and not args.timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    policy = load_policy(args.policy)
    state = State.load(args.state) if args.state else State({})
    totals = {"files": 0, "calls": 0, "refused": 0, "bad": 0}

    async def run() -> None:
        for name in args.files:
            try:
                conversation = read_conversation(name)
            except ConversationError as exc:
                totals["bad"] += 1
                print(f"interlock policy check: error: {_printable(str(exc))}", file=sys.stderr, flush=True)
                continue
            session = policy.session(state, check_timeout=args.timeout)
            decisions = await session.run(conversation)
            totals["files"] += 1
            totals["calls"] += len(decisions)
            refused = [d for d in decisions if not d.allowed]
            totals["refused"] += len(refused)
            lines = [c.line for c in conversation.calls]
            if args.json:
                for i, (d, line) in enumerate(zip(decisions, lines, strict=True)):
                    print(json.dumps({"file": name, "index": i, "line": line, "name": d.call.name,
                                      "allowed": d.allowed, "reason": d.reason, "rule": d.rule}), flush=True)
                continue
            verdict = "all allowed" if not refused else f"{len(refused)} refused"
            print(_printable(f"{name}: {len(decisions)} calls, {verdict}"), flush=True)
            for i, (d, line) in enumerate(zip(decisions, lines, strict=True)):
                if not d.allowed:
                    print(_printable(f"  call {i} (line {line}) {d.call.name}: REFUSED by {d.rule}: {d.reason}"),
                          flush=True)

    anyio.run(run)
    if not args.json and len(args.files) > 1:
        print(f"{totals['files']} conversations, {totals['calls']} calls: {totals['calls'] - totals['refused']} "
              f"allowed, {totals['refused']} refused" + (f"; {totals['bad']} files could not be read"
                                                         if totals["bad"] else ""))
    if totals["bad"]:
        return 2
    return 1 if totals["refused"] else 0


def _draft(args: argparse.Namespace) -> int:
    import os

    from interlock.monitor.errors import ConfigError
    from interlock.monitor.policies.draft import draft_policy

    if not args.base_url or not args.model:
        raise ConfigError("interlock policy draft needs --base-url and --model (an OpenAI-compatible server)")
    if args.attempts < 1:
        raise ConfigError(f"--attempts must be >= 1, got {args.attempts}")
    if not args.timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    output = Path(args.output)
    if output.exists() and not args.force:
        raise ConfigError(f"{output} exists: choose another --output, or --force to overwrite it")
    document = _read_text(args.document, "the policy document")
    tools = _read_text(args.tools, "--tools") if args.tools else ""
    draft = draft_policy(document, base_url=args.base_url, model=args.model,
                         api_key=args.api_key or os.environ.get("OPENAI_API_KEY") or None, tools=tools,
                         state=args.state, attempts=args.attempts, timeout=args.timeout,
                         source=Path(args.document).name,
                         on_attempt=lambda n, problems: print(
                             f"interlock policy draft: attempt {n} rejected: {problems}", file=sys.stderr,
                             flush=True))
    output.write_text(draft.text, encoding="utf-8")
    report: dict[str, Any] = draft.report
    print(f"interlock policy draft: wrote {output} ({report['rules']} rules over {report['tools']} tools, "
          f"{report['calls']} trial calls checked, attempt {draft.attempts}); it is a DRAFT: review every rule "
          f"before you use it", file=sys.stderr)
    for warning in report.get("warnings", []):
        print(f"  warning: {_printable(warning)}", file=sys.stderr)
    return 0


def _read_text(path: str, what: str) -> str:
    from interlock.monitor.errors import ConfigError

    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from None
