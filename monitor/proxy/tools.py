"""Checked tool calls in the proxy: a model's tool call reaches the client only once its arguments passed the
operator's checks and the reasoning before it passed every verifier.

Every call the backend makes is checked, whether the request declared ``tools`` or not (models call tools they
were never offered). A tool call comes from the backend as a chunk whose text is the call's marker line (see
:meth:`~interlock.monitor.chunks.ToolCallRequest.marker`), so it sits in the trace in order with the reasoning: the
:class:`ToolCallVerifier` of the request checks that line like any step, with the same argument checks as
:func:`~interlock.monitor.agents.tools.guard_tool` (a function of the arguments, or a ``Verifier`` scanned over
them), per tool name or for all tools (``"*"``). A failed check is an ordinary ``Fail`` with ``rollback``: the
monitor cuts the call, injects the feedback and the model tries again, up to the intervention limit. The release
policy (:mod:`interlock.monitor.proxy.release`) hands calls to the client only at the end of a run that left them
standing, so nothing a check refused, or a later rollback removed, is ever sent.

Checks are configured as ``{"transfer": [check, ...], "*": [check, ...]}``; :func:`load_tool_checks` reads the
CLI's ``--tool-verifier [TOOL=]SPEC`` where ``SPEC`` is a registry name (``arithmetic``), ``module:function`` or
``path/to/file.py:function``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from interlock.monitor.agents.arguments import NotStrictJSON, argument_path, loads_strict
from interlock.monitor.agents.tools import ArgumentCheck, GuardedTool
from interlock.monitor.chunks import ToolCallRequest
from interlock.monitor.errors import ConfigError
from interlock.monitor.trace import Step, TraceView
from interlock.monitor.triggers import BoundTrigger, Due, Progress, Trigger
from interlock.monitor.verdicts import Action, Fail, Pass
from interlock.monitor.verifier import Verifier

__all__ = ["ALL_TOOLS", "TOOL_CALL_MARKER", "ToolCallLines", "ToolCallVerifier", "ToolChecks", "UndeclaredTools",
           "load_tool_checks", "parse_marker"]

ALL_TOOLS = "*"
ToolChecks = Mapping[str, Sequence[ArgumentCheck]]
TOOL_CALL_MARKER = re.compile(r"<tool_call>([^<\n]*)</tool_call>\n")


def parse_marker(line: str) -> ToolCallRequest | None:
    """The call a marker line stands for (``None``: not a marker)."""
    m = TOOL_CALL_MARKER.fullmatch(line)
    if m is None:
        return None
    try:
        obj = json.loads(m.group(1))
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str) for k in ("id", "name", "arguments")):
        return None
    return ToolCallRequest(obj["id"], obj["name"], obj["arguments"])


def _accept(**arguments: Any) -> None:
    """The stand-in tool the guard reviews: the proxy never runs tools, the client does."""


UndeclaredTools = Literal["refuse", "check"]


class _CallLines(BoundTrigger):
    every_chunk = False
    # It sees every step (the final one too) and picks the marker lines: the text it leaves out holds no call, so
    # the scheduler must not check that text with it at the end (a request without calls gets no extra verdict).
    covers_gaps = False

    def advance(self, progress: Progress) -> list[Due]:
        return [Due(s.end, s, final=progress.final) for s in progress.new_steps if s.text.startswith("<tool_call>")]


class ToolCallLines(Trigger):
    """Due at each completed step that is a tool call's marker line, and at nothing else: the tool-call check
    adds no verdict about the reasoning, so a request that makes no call reads as it would without it."""

    def bind(self) -> BoundTrigger:
        return _CallLines()


class ToolCallVerifier(Verifier):
    """Checks every tool call the backend emits for one request, whether the request declared tools or not: the
    tool must be one the request offered (``tools``; ``undeclared="check"`` lets other names through to the
    argument checks instead), its arguments one strict-JSON object, and every argument check configured for the
    tool (and for all tools) must pass. Fail-closed: a check that errs or overruns refuses the call.

    ``markers``: the marker lines the backend really emitted for this request (a model that writes a look-alike
    line as text is not making a call, and its line is left to the other verifiers).
    """

    name = "tool-call"
    action = Action.ROLLBACK
    fail_closed = True
    trigger = ToolCallLines()

    def __init__(self, checks: ToolChecks, tools: Sequence[str], markers: Mapping[str, ToolCallRequest], *,
                 check_timeout: float = 10.0, undeclared: UndeclaredTools = "refuse") -> None:
        if undeclared not in ("refuse", "check"):
            raise ConfigError(f"undeclared tools: expected 'refuse' or 'check', got {undeclared!r}")
        self.checks = {name: tuple(found) for name, found in checks.items()}
        self.tools = tuple(tools)
        self.markers = markers
        self.check_timeout = check_timeout
        self.undeclared = undeclared
        most = max((len(c) for c in self.checks.values()), default=0) * 2
        super().__init__(timeout=check_timeout * max(1, most) + 5.0)

    def span_attributes(self, view: TraceView) -> dict[str, str]:
        """The call a check's span is about: its ``gen_ai.tool.name`` and ``gen_ai.tool.call.id``."""
        call = self.markers.get(view.step.text)
        return {} if call is None else {"gen_ai.tool.name": call.name, "gen_ai.tool.call.id": call.id}

    def checks_for(self, tool: str) -> tuple[ArgumentCheck, ...]:
        return (*self.checks.get(tool, ()), *self.checks.get(ALL_TOOLS, ()))

    def _unknown(self, name: str) -> Fail:
        shown = _short(name, 64)
        if not self.tools:
            return Fail(f"the model called {shown!r}, but the request offered no tools",
                        feedback=f"No tools are available here, so {shown} cannot be called; answer in text.",
                        claim=f"tool {shown}")
        known = ", ".join(self.tools)
        return Fail(f"the model called {shown!r}, which is not one of the tools offered ({known})",
                    feedback=f"There is no tool named {shown}; the tools are: {known}.", claim=f"tool {shown}")

    async def check(self, step: Step) -> Fail | Pass | None:
        call = self.markers.get(step.text)
        if call is None:
            return Pass(checked=False, note="a line that looks like a tool call, but the backend made no call")
        if call.name not in self.tools and self.undeclared == "refuse":
            return self._unknown(call.name)
        name = _short(call.name, 64)
        try:
            arguments = loads_strict(call.arguments)
        except NotStrictJSON as exc:  # NaN, Infinity: never passed to a check
            return Fail(f"the arguments of {name} are not strict JSON: {exc.argument_message()}",
                        feedback=f"Send {argument_path(exc.path)} of {name} as a finite number.",
                        claim=f"tool {name}")
        except (ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else f"not valid JSON ({exc})"
            return Fail(f"the arguments of {name} are {reason}",
                        feedback=f"The arguments of {name} must be one JSON object.", claim=f"tool {name}")
        if not isinstance(arguments, dict):
            return Fail(f"the arguments of {name} are a {type(arguments).__name__}, not a JSON object",
                        feedback=f"The arguments of {name} must be one JSON object.", claim=f"tool {name}")
        checks = self.checks_for(call.name)
        if not checks:  # a known tool with well-formed arguments, but nothing judged them
            return Pass(checked=False, note=f"no argument checks for {name}")
        guard = GuardedTool(_accept, name=name, verifiers=checks, read_only=True,
                            check_timeout=self.check_timeout, fail_closed=True)
        refusal = await guard.review(arguments)
        if refusal is None:
            return Pass()
        messages = "; ".join(f"{r.source}: {r.message}" for r in refusal.reasons)
        return Fail(f"tool call {name}({_short(call.arguments)}) refused: {messages}",
                    feedback=refusal.feedback or f"The call of {name} was refused.",
                    claim=f"tool {name} {_short(call.arguments)}")


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _load_function(spec: str) -> Any:
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ConfigError(f"tool check {spec!r}: expected a registry name, module:function or file.py:function")
    try:
        if target.endswith(".py"):
            path = Path(target)
            loader = importlib.util.spec_from_file_location(f"interlock_tool_checks_{path.stem}", path)
            if loader is None or loader.loader is None or not path.is_file():
                raise ConfigError(f"tool check {spec!r}: no Python file at {target}")
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"tool check {spec!r}: cannot import {target}: {type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"tool check {spec!r}: {target} has no {attr}")
    if not (isinstance(obj, Verifier) or callable(obj)):
        raise ConfigError(f"tool check {spec!r}: {attr} is neither a Verifier nor callable")
    return obj


def load_tool_checks(specs: Sequence[str]) -> dict[str, list[ArgumentCheck]]:
    """``["transfer=mymod:max_100", "arithmetic", "checks.py:no_urls"]`` as ``{"transfer": [...], "*": [...]}``.

    A spec without ``TOOL=`` applies to every tool. A registry name makes that verifier, scanned over the
    arguments; ``module:function`` and ``file.py:function`` load a function of the arguments (or a Verifier).
    """
    from interlock.monitor.registry import create_verifier

    out: dict[str, list[ArgumentCheck]] = {}
    for spec in specs:
        tool, sep, target = spec.partition("=")
        if not sep:
            tool, target = ALL_TOOLS, spec
        tool, target = tool.strip(), target.strip()
        if not tool or not target:
            raise ConfigError(f"--tool-verifier {spec!r}: expected [TOOL=]NAME or [TOOL=]module:function")
        check: ArgumentCheck = _load_function(target) if ":" in target else create_verifier(target)
        if isinstance(check, type) and issubclass(check, Verifier):
            check = check()
        out.setdefault(tool, []).append(check)
    return out
