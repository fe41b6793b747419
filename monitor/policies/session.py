"""A policy session: one conversation checked call by call against the state, with the effects of the calls it
allowed applied to its own layer of the state.

``await session.check(call)`` decides without recording; ``session.record(call, decision, result)`` adds the call
to the history and, when it was allowed and did not fail, applies the policy's effects of it. ``await
session.run(conversation)`` does both for every call of a conversation, as if each allowed call ran.

Rules run off the event loop: a call's synchronous rules together in one worker thread, its async rules in the
loop, all within the policy's ``check_timeout``. A rule that raises, overruns or returns something that is not an
outcome leaves the call undecided, which refuses it (fail-closed) unless the rule says otherwise. An effect that
fails leaves the session's model of the state unknown: every later call is refused, with the reason.
"""

from __future__ import annotations

import functools
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
from interlock.monitor.agents.tools import GuardedTool, RefusalReason, ToolCall, ToolRefusal
from interlock.monitor.execute import call_async_bounded, call_in_thread
from interlock.monitor.policies.context import RuleContext
from interlock.monitor.policies.conversation import NO_RESULT, CallEntry, CallRecord, Conversation, Event, Message
from interlock.monitor.policies.errors import PolicyError, StateError
from interlock.monitor.policies.outcomes import Allow, Decision, Refusal, Refuse, Undecided
from interlock.monitor.policies.state import LiveState, State, StateSource
from interlock.monitor.verdicts import Fail

if TYPE_CHECKING:
    from interlock.monitor.policies.policy import Policy, Rule

__all__ = ["MAX_PENDING", "PolicySession"]

MAX_PENDING = 1000  # allowed calls waiting for their tool to run (see PolicySession.guard)


def _judge(rule: Rule, outcome: Any) -> Refusal | None:
    """The refusal (or note) a rule's outcome amounts to; ``None`` when it allows the call."""
    if outcome is None or outcome is True or isinstance(outcome, Allow):
        return None
    if isinstance(outcome, Refuse):
        return Refusal(rule.name, outcome.reason, outcome.feedback)
    if isinstance(outcome, Undecided):
        return Refusal(rule.name, outcome.reason, undecided=True)
    if isinstance(outcome, BaseException):
        detail = f"{type(outcome).__name__}: {outcome}" if str(outcome) else type(outcome).__name__
        return Refusal(rule.name, f"the rule raised {detail}", undecided=True)
    return Refusal(rule.name, f"the rule returned {type(outcome).__name__}, not Allow, Refuse, Undecided or None",
                   undecided=True)


def _sync_rules(rules: Sequence[Rule], ctx: RuleContext, progress: list[str]) -> list[tuple[Rule, Any]]:
    """Run synchronous rules in order (in a worker thread) until one refuses; ``progress`` names the one running."""
    out: list[tuple[Rule, Any]] = []
    for rule in rules:
        progress.append(rule.name)
        try:
            outcome: Any = rule.function(ctx)
        except Exception as exc:
            outcome = exc
        if inspect.isawaitable(outcome):
            close = getattr(outcome, "close", None)
            if close is not None:
                close()
            outcome = Undecided("the rule returned an awaitable from a plain function: declare it `async def`")
        out.append((rule, outcome))
        found = _judge(rule, outcome)
        if found is not None and (rule.fail_closed or not found.undecided):
            break
    return out


class PolicySession:
    """One conversation under a policy: its history, its layer of the state, and the checks of its calls."""

    def __init__(self, policy: Policy, state: StateSource | Mapping[str, Any] | None = None, *,
                 check_timeout: float | None = None) -> None:
        policy.validate()
        self.policy = policy
        if state is None:
            state = State({})
        elif isinstance(state, Mapping):
            state = State(dict(state))
        elif not isinstance(state, State | LiveState):
            raise PolicyError(f"state must be a State, a LiveState or a mapping, got {type(state).__name__}")
        self.state: StateSource = state.fork()
        self.check_timeout = float(check_timeout if check_timeout is not None else policy.check_timeout)
        self.history: list[Event] = []
        self.broken: str | None = None  # why the model of the state can no longer be trusted
        self._observed = 0
        self._pending: dict[tuple[str, str], Decision] = {}

    def __repr__(self) -> str:
        calls = sum(isinstance(e, CallRecord) for e in self.history)
        return f"<PolicySession {self.policy.name!r}: {calls} calls, {len(self.history) - calls} messages>"

    # -- the conversation --------------------------------------------------------------------------------------
    def add_message(self, role: str, content: str) -> Message:
        """Add a message (``user``, ``assistant`` or ``system``) to the history."""
        if role not in ("user", "assistant", "system"):
            raise PolicyError(f"a message's role must be user, assistant or system, got {role!r}")
        if not isinstance(content, str):
            raise PolicyError(f"a message's content must be a string, got {type(content).__name__}")
        message = Message(role, content)  # type: ignore[arg-type]
        self.history.append(message)
        return message

    def observe(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Catch up with a growing list of chat messages (the Agent loop's history): add the ones not seen yet.
        Tool messages are skipped: the session records calls and results itself, through :meth:`guard`."""
        if len(messages) < self._observed:
            self._observed = 0  # a new conversation
        for m in messages[self._observed:]:
            role = m.get("role")
            content = m.get("content")
            if role in ("user", "assistant", "system") and isinstance(content, str):
                self.history.append(Message(role, content))
        self._observed = len(messages)

    @property
    def calls(self) -> list[CallRecord]:
        return [e for e in self.history if isinstance(e, CallRecord)]

    # -- checking ------------------------------------------------------------------------------------------------
    async def _view(self) -> Any:
        if isinstance(self.state, LiveState):
            with anyio.fail_after(self.check_timeout):
                snapshot: State = await call_in_thread(self.state.snapshot)
            return snapshot.view
        return self.state.view

    async def check(self, call: ToolCall | Mapping[str, Any]) -> Decision:
        """The policy's decision on ``call`` given the history and the state so far (nothing is recorded)."""
        if not isinstance(call, ToolCall):
            call = ToolCall(str(call.get("name", "")), dict(call.get("arguments") or {}), str(call.get("id", "")))
        if self.broken is not None:
            return Decision(call, Refusal("state-model", self.broken))
        deadline = time.monotonic() + self.check_timeout
        try:
            view = await self._view()
        except TimeoutError:
            return Decision(call, Refusal("state", f"fetching the live state took longer than "
                                                   f"{self.check_timeout:g} s", undecided=True))
        except Exception as exc:
            return Decision(call, Refusal("state", f"fetching the live state failed: {type(exc).__name__}: {exc}",
                                          undecided=True))
        ctx = RuleContext(call, tuple(self.history), view, self.policy)
        rules = self.policy.rules_for(call)
        checked: list[str] = []
        notes: list[Refusal] = []
        i = 0
        while i < len(rules):
            if rules[i].is_async:
                batch = [rules[i]]
                i += 1
            else:
                j = i
                while j < len(rules) and not rules[j].is_async:
                    j += 1
                batch, i = rules[i:j], j
            progress: list[str] = []
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                with anyio.fail_after(remaining):
                    if batch[0].is_async:
                        progress.append(batch[0].name)
                        try:
                            outcome = await call_async_bounded(batch[0].function(ctx))  # type: ignore[arg-type]
                        except Exception as exc:
                            outcome = exc
                        results = [(batch[0], outcome)]
                    else:
                        results = await call_in_thread(_sync_rules, batch, ctx, progress)
            except TimeoutError:
                running = progress[-1] if progress else batch[0].name
                checked.extend(progress)
                refusal = Refusal(running, f"the policy's rules did not decide within {self.check_timeout:g} s "
                                           f"(the rule {running!r} was still running)", undecided=True)
                return Decision(call, refusal, tuple(checked), tuple(notes))
            for rule, outcome in results:
                checked.append(rule.name)
                found = _judge(rule, outcome)
                if found is None:
                    continue
                if found.undecided and not rule.fail_closed:
                    notes.append(found)
                    continue
                return Decision(call, found, tuple(checked), tuple(notes))
        return Decision(call, None, tuple(checked), tuple(notes))

    def record(self, call: ToolCall, decision: Decision, result: Any = NO_RESULT,
               error: str | None = None) -> CallRecord:
        """Add a call to the history; when it was allowed and did not fail, apply the policy's effects of it."""
        record = CallRecord(call, decision, result, error)
        self.history.append(record)
        if record.ran and isinstance(self.state, State) and self.broken is None:
            for effect in self.policy.effects.get(call.name, ()):
                try:
                    wants_result = len([p for p in inspect.signature(effect).parameters.values()
                                        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) == 3
                    if wants_result:
                        effect(self.state, call, result)
                    else:
                        effect(self.state, call)
                except Exception as exc:
                    name = getattr(effect, "__name__", repr(effect))
                    detail = str(exc) if isinstance(exc, StateError) else f"{type(exc).__name__}: {exc}"
                    self.broken = (f"the policy's model of the state is unknown since the effect {name!r} of "
                                   f"{call.name} failed ({detail}); no further call can be checked")
                    break
        return record

    async def submit(self, call: ToolCall, result: Any = NO_RESULT, error: str | None = None) -> Decision:
        """Check a call and record it as if it ran (when allowed): what :meth:`run` does for each call."""
        decision = await self.check(call)
        self.record(call, decision, result, error if decision.allowed else None)
        return decision

    async def run(self, conversation: Conversation | Iterable[Message | CallEntry | ToolCall]) -> list[Decision]:
        """Go through a conversation in order: messages join the history, each call is checked and recorded (an
        allowed call's effects applied unless the conversation says it failed). One decision per call."""
        decisions = []
        for item in conversation:
            if isinstance(item, Message):
                self.history.append(item)
            elif isinstance(item, CallEntry):
                decisions.append(await self.submit(item.call, item.result, item.error))
            elif isinstance(item, ToolCall):
                decisions.append(await self.submit(item))
            else:
                raise PolicyError(f"a conversation holds messages and calls, not {type(item).__name__}")
        return decisions

    # -- guarding tools --------------------------------------------------------------------------------------------
    def check_for(self, tool: str) -> Callable[[Mapping[str, Any]], Awaitable[Fail | None]]:
        """An argument check for ``guard_tool(..., verifiers=[...])``: the policy's decision on a call of ``tool``
        with those arguments. A refused call is recorded at once; an allowed one when the tool has run (see
        :meth:`guard`, which also applies its effects)."""

        async def policy_check(arguments: Mapping[str, Any]) -> Fail | None:
            call = ToolCall(tool, dict(arguments))
            decision = await self.check(call)
            if decision.allowed:
                self._pending[(tool, _key(arguments))] = decision
                while len(self._pending) > MAX_PENDING:  # allowed, but another check refused: the tool never ran
                    self._pending.pop(next(iter(self._pending)))
                return None
            self.record(call, decision)
            return Fail(decision.reason, verifier=f"policy:{decision.rule}",
                        feedback=decision.feedback if decision.refusal and decision.refusal.feedback else "")

        policy_check.__name__ = f"policy-{tool}"
        return policy_check

    def guard(self, tool: GuardedTool | Callable[..., Any], **options: Any) -> GuardedTool:
        """``tool`` (a function or a :class:`GuardedTool`) guarded by this session: each call is checked against
        the policy before it runs, and recorded after it ran, with its result (or error) and effects."""
        if isinstance(tool, GuardedTool):
            base = tool
        else:
            from interlock.monitor.agents.tools import guard_tool

            base = guard_tool(tool, **options)
            options = {}
        name = base.name
        inner = base.fn

        @functools.wraps(inner)
        async def ran(*args: Any, **kwargs: Any) -> Any:
            arguments = base.bind(*args, **kwargs)
            decision = self._pending.pop((name, _key(arguments)), None)
            call = ToolCall(name, arguments)
            if decision is None:  # the pending decision was taken by an identical call: decide again
                decision = await self.check(call)
                if not decision.allowed:
                    self.record(call, decision)
                    return ToolRefusal(name, arguments, (RefusalReason("arguments", f"policy:{decision.rule}",
                                                                       decision.reason),))
            try:
                if base.in_thread and not inspect.iscoroutinefunction(inner):
                    result = await call_in_thread(functools.partial(inner, *args, **kwargs))
                else:
                    result = inner(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
            except BaseException as exc:
                self.record(call, decision, error=f"{type(exc).__name__}: {exc}")
                raise
            self.record(call, decision, result)
            return result

        guarded = GuardedTool(ran, run=base.run, verifiers=(*base.verifiers, self.check_for(name)),
                              read_only=base.read_only, name=name, description=base.description,
                              barrier_timeout=base.barrier_timeout, check_timeout=options.get(
                                  "check_timeout", max(base.check_timeout, self.check_timeout + 1.0)),
                              tool_timeout=base.tool_timeout, fail_closed=True, in_thread=False,
                              on_refusal=base.on_refusal)
        guarded.signature = base.signature
        return guarded


def _key(arguments: Mapping[str, Any]) -> str:
    try:
        return json.dumps(arguments, sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        return repr(sorted(arguments.items(), key=lambda kv: kv[0]))
