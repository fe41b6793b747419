"""A small adapter that puts a generic agent loop under watch: messages in, model stream out, tool calls out.

Each model turn is one monitored run (verifiers and governors watch the reasoning, rollbacks correct it); the
turn ends where the model closes a tool call, and every tool call goes through :func:`~monitor.guard_tool`, so
a tool with side effects runs only after the checks of the reasoning that led to it passed::

    agent = Agent(generator, tools=[get_balance, guard_tool(transfer, verifiers=[limit])], verifiers=["arithmetic"])
    result = await agent.run("Pay Bob what Alice owes him.")
    result.final_text, result.refusals

Tool calls are written by the model in the tagged-JSON form many open models are trained on
(``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``); results and refusals come back as ``tool``
messages, so the model can read why a call was refused and try again.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anyio
from interlock.monitor.agents.arguments import NotStrictJSON, loads_strict
from interlock.monitor.agents.tools import GuardedTool, ToolCall, ToolRefusal, guard_tool, use_run
from interlock.monitor.agents.tracing import agent_span
from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError
from interlock.monitor.events import Event
from interlock.monitor.generation import Capabilities, GenerationRequest, Generator
from interlock.monitor.governor import Governor
from interlock.monitor.monitor import DEFAULT_FEEDBACK_TEMPLATE, Monitor
from interlock.monitor.result import RunResult, StopReason
from interlock.monitor.verifier import Verifier

__all__ = [
    "MAX_NESTING",
    "TOOL_CALL_CLOSE",
    "TOOL_CALL_OPEN",
    "Agent",
    "AgentResult",
    "AgentTurn",
    "MalformedToolCall",
    "Message",
    "StopAt",
    "ToolOutcome",
    "ToolPolicy",
    "chatml",
    "parse_tool_calls",
    "tools_prompt",
    "transcript",
]

Message = dict[str, Any]  # {"role": "system" | "user" | "assistant" | "tool", "content": str, "name"?: str}
PromptFormat = Callable[[Sequence[Message]], str]

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
_TOOL_CALL = re.compile(re.escape(TOOL_CALL_OPEN) + r"(.*?)(?:" + re.escape(TOOL_CALL_CLOSE) + r"|\Z)", re.S)


class StopAt:
    """Wraps a generator so that each stream ends at the first of ``stops``.

    ``include=True`` keeps the stop string in the text (an agent's ``</tool_call>``), ``False`` drops it (the
    OpenAI API's ``stop``). The strings are passed on in ``GenerationRequest.stop`` too, so a backend that can
    stop by itself does. Only the few characters that could begin a stop string are held back, so text still
    streams as it comes; ``stopped`` says whether the last main stream ended at a stop string.
    """

    def __init__(self, generator: Generator, stops: Sequence[str], *, include: bool = False) -> None:
        stops = tuple(stops)
        if not all(isinstance(s, str) and s for s in stops):
            raise ConfigError(f"StopAt: stop strings must be non-empty strings, got {stops!r}")
        self.generator = generator
        self.stops = stops
        self.include = include
        self.stopped = False

    @property
    def capabilities(self) -> Capabilities:
        caps = getattr(self.generator, "capabilities", None)
        return caps if isinstance(caps, Capabilities) else Capabilities()

    def _first_stop(self, text: str) -> tuple[int, int] | None:
        best: tuple[int, int] | None = None
        for s in self.stops:
            i = text.find(s)
            if i >= 0 and (best is None or i < best[0]):
                best = (i, i + len(s))
        return best

    def _held(self, text: str) -> int:
        """How many trailing characters of ``text`` could begin a stop string."""
        longest = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(text)), longest, -1):
                if s.startswith(text[-n:]):
                    longest = n
                    break
        return longest

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        main = request.purpose == "main"
        if main:
            self.stopped = False
        merged = tuple(dict.fromkeys((*request.stop, *self.stops)))
        inner = self.generator.stream(dataclasses.replace(request, stop=merged))
        pending = ""  # received but not passed on yet: it may begin a stop string
        try:
            async for chunk in inner:
                text = pending + chunk.text
                found = self._first_stop(text)
                if found is not None:
                    end = found[1] if self.include else found[0]
                    if end > 0:
                        yield Chunk(text[:end])
                    if main:
                        self.stopped = True
                    return
                keep = self._held(text)
                out = text[: len(text) - keep]
                if not pending and not keep:
                    yield chunk  # untouched: token ids and per-token data stay exact
                elif out:
                    yield Chunk(out)
                pending = text[len(out):]
            if pending:
                yield Chunk(pending)
        finally:
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                with anyio.move_on_after(5, shield=True):
                    await aclose()


# -- prompts ---------------------------------------------------------------------------------------------


def chatml(messages: Sequence[Message]) -> str:
    """ChatML (``<|im_start|>role ... <|im_end|>``, as SmolLM2 and Qwen use), ending with the assistant's turn."""
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


def transcript(messages: Sequence[Message]) -> str:
    """A plain-text transcript (``User: ...``) for base models and servers without a chat template."""
    labels = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}
    parts = []
    for m in messages:
        label = labels.get(m["role"], m["role"].title())
        if m["role"] == "tool" and m.get("name"):
            label = f"Tool ({m['name']})"
        parts.append(f"{label}: {m['content']}\n\n")
    return "".join(parts) + "Assistant:"


def _signature(tool: GuardedTool) -> str:
    params = []
    for p in tool.signature.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        ann = p.annotation
        type_name = ann if isinstance(ann, str) else getattr(ann, "__name__", "")
        params.append(f"{p.name}: {type_name}" if type_name and ann is not inspect.Parameter.empty else p.name)
    return f"{tool.name}({', '.join(params)})"


def tools_prompt(tools: Sequence[GuardedTool]) -> str:
    """The system-prompt text that tells a model which tools it has and how to call them."""
    lines = [
        "You can use tools. To call a tool, write exactly one line:",
        f'{TOOL_CALL_OPEN}{{"name": "TOOL_NAME", "arguments": {{"ARG": VALUE}}}}{TOOL_CALL_CLOSE}',
        "and stop: the result comes back in the next message. A refused call comes back with the reason; fix it "
        "and try again. When you have the final answer, reply without a tool call.",
        "Tools:",
    ]
    for t in tools:
        note = " (read-only)" if t.read_only else ""
        lines.append(f"- {_signature(t)}{note}: {t.description}".rstrip(": "))
    return "\n".join(lines)


# -- tool calls -------------------------------------------------------------------------------------------


class ToolPolicy(Protocol):
    """What :class:`Agent` needs of a tool-call policy (``PolicySession`` is one): guard each tool, and see the
    conversation (the messages so far) before a turn's calls run."""

    def guard(self, tool: GuardedTool) -> GuardedTool: ...

    def observe(self, messages: Sequence[Mapping[str, Any]]) -> None: ...


@dataclass(frozen=True)
class MalformedToolCall:
    """A tool call the model wrote that is not ``{"name": str, "arguments": object}`` JSON."""

    raw: str
    error: str


def parse_tool_calls(text: str) -> list[ToolCall | MalformedToolCall]:
    """Every ``<tool_call>{...}</tool_call>`` in ``text`` (an unclosed one at the very end counts), parsed as
    JSON (never evaluated); a JSON list holds several calls, and ``"parameters"`` is accepted for ``"arguments"``."""
    calls: list[ToolCall | MalformedToolCall] = []
    for m in _TOOL_CALL.finditer(text):
        raw = m.group(1).strip()
        try:
            data = loads_strict(raw)
        except NotStrictJSON as exc:  # NaN or Infinity: never passed to a check or a tool
            calls.append(MalformedToolCall(raw, exc.argument_message(_call_prefix(exc.path))))
            continue
        except json.JSONDecodeError as exc:
            calls.append(MalformedToolCall(raw, f"not valid JSON: {exc.msg} at character {exc.pos}"))
            continue
        except RecursionError:
            calls.append(MalformedToolCall(raw, f"nested more than {MAX_NESTING} levels deep"))
            continue
        if _depth_exceeds(data, MAX_NESTING):
            calls.append(MalformedToolCall(raw, f"nested more than {MAX_NESTING} levels deep"))
            continue
        for item in data if isinstance(data, list) else [data]:  # SmolLM2 and others write a list of calls
            calls.append(_one_call(item, raw, f"call_{len(calls)}"))
    return calls


def _call_prefix(path: tuple[str | int, ...]) -> int:
    """How many parts of a path into a tool call's JSON lead to its arguments: a call's index in a list of calls,
    then ``"arguments"`` (or ``"parameters"``)."""
    lead = 1 if path and isinstance(path[0], int) else 0
    return lead + (1 if path[lead:lead + 1] in (("arguments",), ("parameters",)) else 0)


MAX_NESTING = 64  # deeper arguments are refused as malformed: rendering or checking them could exhaust the stack


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether JSON data nests lists and objects more than ``limit`` levels deep (iteratively: no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _one_call(data: Any, raw: str, ident: str) -> ToolCall | MalformedToolCall:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return MalformedToolCall(raw, 'expected an object {"name": "...", "arguments": {...}}')
    arguments = data.get("arguments", data.get("parameters", {}))
    if isinstance(arguments, str):  # some models double-encode the arguments
        try:
            decoded = loads_strict(arguments)
        except NotStrictJSON as exc:
            return MalformedToolCall(raw, exc.argument_message())
        except (ValueError, RecursionError):
            pass
        else:
            if _depth_exceeds(decoded, MAX_NESTING):
                return MalformedToolCall(raw, f"nested more than {MAX_NESTING} levels deep")
            arguments = decoded
    if not isinstance(arguments, dict):
        return MalformedToolCall(raw, "arguments must be a JSON object")
    return ToolCall(data["name"], arguments, id=ident)


@dataclass(frozen=True)
class ToolOutcome:
    """What became of one tool call: its value, a refusal, or an error; ``content`` is what the model reads."""

    call: ToolCall | MalformedToolCall
    content: str
    value: Any = None
    refusal: ToolRefusal | None = None
    error: str | None = None

    @property
    def ran(self) -> bool:
        return self.refusal is None and self.error is None


@dataclass(frozen=True)
class AgentTurn:
    """One model turn: the monitored run, the text it left, the tool calls it made and what became of them."""

    result: RunResult
    calls: tuple[ToolCall | MalformedToolCall, ...]
    outcomes: tuple[ToolOutcome, ...]
    messages: tuple[Message, ...]  # the assistant message and the tool messages this turn added

    @property
    def text(self) -> str:
        return self.result.text


@dataclass(frozen=True)
class AgentResult:
    """A whole agent run: every message (the input ones first), every turn, and why it ended."""

    messages: tuple[Message, ...]
    turns: tuple[AgentTurn, ...]
    stop: Literal["answer", "max_turns", "interrupted"]
    final_text: str = ""
    refusals: tuple[ToolRefusal, ...] = field(default=())


def _content(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


class Agent:
    """Runs an agent loop on any :class:`~monitor.Generator` with monitored turns and guarded tools.

    - ``tools``: functions (wrapped with :func:`guard_tool`; mark read-only ones with ``guard_tool(f,
      read_only=True)``) or :class:`GuardedTool` objects. Guards without their own ``run`` wait for the turn's run.
    - ``verifiers``/``governors``/``feedback_template``/``monitor_options``: as for :class:`~monitor.Monitor`;
      governors are shared by the turns, so give stateful ones per agent.
    - ``prompt_format``: messages -> prompt text (default :func:`transcript`; :func:`chatml` or a tokenizer's
      chat template for instruction-tuned local models).
    - ``system``: text put before the tool list in the system message.
    - ``turn_timeout``: seconds one model turn (generation and checks) may take.
    - ``policy``: a tool-call policy session (:class:`~interlock.monitor.policies.PolicySession`, or anything
      with ``guard(tool)`` and ``observe(messages)``): it guards every tool, and sees the conversation before each
      turn's calls run.
    """

    def __init__(self, generator: Generator, tools: Sequence[GuardedTool | Callable[..., Any]] = (), *,
                 verifiers: Sequence[Verifier | str] = (), governors: Sequence[Governor] = (),
                 prompt_format: PromptFormat = transcript, system: str = "",
                 feedback_template: str = DEFAULT_FEEDBACK_TEMPLATE, max_turns: int = 8,
                 turn_timeout: float = 300.0, monitor_options: Mapping[str, Any] | None = None,
                 policy: ToolPolicy | None = None) -> None:
        if max_turns < 1:
            raise ConfigError(f"Agent: max_turns must be >= 1, got {max_turns}")
        if not turn_timeout > 0:
            raise ConfigError(f"Agent: turn_timeout must be a positive number of seconds, got {turn_timeout!r}")
        self.tools: dict[str, GuardedTool] = {}
        for t in tools:
            guarded = t if isinstance(t, GuardedTool) else guard_tool(t)
            if policy is not None:
                guarded = policy.guard(guarded)
            if guarded.name in self.tools:
                raise ConfigError(f"Agent: two tools are named {guarded.name!r}")
            self.tools[guarded.name] = guarded
        self.policy = policy
        self.generator = StopAt(generator, [TOOL_CALL_CLOSE], include=True)
        self.verifiers = list(verifiers)
        self.governors = list(governors)
        self.prompt_format = prompt_format
        self.system = system
        self.feedback_template = feedback_template
        self.max_turns = max_turns
        self.turn_timeout = turn_timeout
        self.monitor_options = dict(monitor_options or {})
        self.monitor = Monitor(self.generator, self.verifiers, self.governors, feedback_template=feedback_template,
                               **self.monitor_options)

    def system_message(self) -> Message:
        parts = [p for p in (self.system.strip(), tools_prompt(list(self.tools.values())) if self.tools else "")
                 if p]
        return {"role": "system", "content": "\n\n".join(parts)}

    def prompt(self, messages: Sequence[Message]) -> str:
        """The prompt of the next turn: the system message (unless the messages start with one) and ``messages``."""
        head = [] if messages and messages[0].get("role") == "system" else [self.system_message()]
        return self.prompt_format([*head, *messages])

    async def step(self, messages: Sequence[Message], *,
                   on_event: Callable[[Event], Any] | None = None) -> AgentTurn:
        """One turn: generate under watch until the model ends or closes a tool call, then run its tool calls."""
        for i, m in enumerate(messages):
            if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"),
                                                                                                    str):
                raise ConfigError(f"messages[{i}] must be a dict with string 'role' and 'content', got {m!r}")
        with anyio.fail_after(self.turn_timeout):
            async with self.monitor.stream(self.prompt(messages)) as run:
                async for event in run:
                    if on_event is not None:
                        handled = on_event(event)
                        if inspect.isawaitable(handled):
                            await handled
        result = run.result
        calls = tuple(parse_tool_calls(result.text))
        added: list[Message] = [{"role": "assistant", "content": result.text}]
        if self.policy is not None and calls:
            self.policy.observe([*messages, *added])
        outcomes = []
        with use_run(run):
            for call in calls:
                outcome = await self._execute(call)
                outcomes.append(outcome)
                name = call.name if isinstance(call, ToolCall) else "invalid"
                added.append({"role": "tool", "name": name, "content": outcome.content})
        return AgentTurn(result, calls, tuple(outcomes), tuple(added))

    async def _execute(self, call: ToolCall | MalformedToolCall) -> ToolOutcome:
        if isinstance(call, MalformedToolCall):
            return ToolOutcome(call, json.dumps({"error": f"could not read the tool call: {call.error}"}),
                               error=call.error)
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            error = f"there is no tool named {call.name!r}; the tools are: {known}"
            return ToolOutcome(call, json.dumps({"error": error}), error=error)
        try:
            value = await tool.call(call.arguments, call_id=call.id)
        except TimeoutError:
            error = f"{call.name} timed out"
            return ToolOutcome(call, json.dumps({"error": error}), error=error)
        except ConfigError:
            raise
        except Exception as exc:  # a tool's own failure is the model's to handle, like any tool error
            error = f"{call.name} failed: {type(exc).__name__}: {exc}"
            return ToolOutcome(call, json.dumps({"error": error}), error=error)
        if isinstance(value, ToolRefusal):
            return ToolOutcome(call, value.to_message(), refusal=value)
        return ToolOutcome(call, _content(value), value=value)

    async def run(self, messages: str | Sequence[Message], *,
                  on_event: Callable[[Event], Any] | None = None) -> AgentResult:
        """Loop until the model answers without a tool call, a turn is interrupted, or ``max_turns`` is reached
        (an ``invoke_agent`` span around the turns' spans when tracing is on)."""
        span = agent_span(self.monitor.tracer_provider, self.generator, self.monitor.meta)
        if span is None:
            return await self._loop(messages, on_event)
        with span:
            try:
                result = await self._loop(messages, on_event)
            except BaseException as exc:
                span.failed(exc)
                raise
            span.finished(result)
            return result

    async def _loop(self, messages: str | Sequence[Message], on_event: Callable[[Event], Any] | None) -> AgentResult:
        history: list[Message] = ([{"role": "user", "content": messages}] if isinstance(messages, str)
                                  else [dict(m) for m in messages])
        turns: list[AgentTurn] = []
        stop: Literal["answer", "max_turns", "interrupted"] = "max_turns"
        for _ in range(self.max_turns):
            turn = await self.step(history, on_event=on_event)
            turns.append(turn)
            history.extend(turn.messages)
            if not turn.calls:
                stop = "answer" if turn.result.stop_reason not in _INTERRUPTED else "interrupted"
                break
        refusals = tuple(o.refusal for t in turns for o in t.outcomes if o.refusal is not None)
        final = turns[-1].text if turns and not turns[-1].calls else ""
        return AgentResult(tuple(history), tuple(turns), stop, final, refusals)


_INTERRUPTED = (StopReason.INTERRUPTED, StopReason.OSCILLATION, StopReason.INTERVENTION_LIMIT, StopReason.ERROR,
                StopReason.UNRESUMABLE, StopReason.CANCELLED)
