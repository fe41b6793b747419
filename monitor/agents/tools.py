"""Checked tool calls: a tool with side effects runs only after the reasoning that led to it has passed its checks.

``guard_tool(fn, run=run, verifiers=[...])`` wraps a sync or async tool. Before the tool runs the guard

1. waits for the run's write barrier (``await run.barrier()``: every check of the trace so far, the step still
   being written included, has finished and none of them failed), unless the tool is marked ``read_only``, and
   refuses the call if a rollback has cut the trace below the point it had when the call was made (the reasoning
   behind the call no longer exists);
2. checks the call's arguments: a callable receives the bound arguments as a dict and returns a verdict
   (``Fail``, ``Pass``, ``Unknown``, ``None``/``True`` for pass, ``False`` for fail, or a list); a
   :class:`~monitor.Verifier` is scanned over a text rendering of the call, one line per argument
   (``amount = 500``), so the same verifiers that watch the reasoning can watch the arguments. Arguments are
   strict JSON (:mod:`interlock.monitor.agents.arguments`): a NaN or infinite number is refused, naming the
   argument, before any check or the tool sees it.

On a violation the tool is not called: the caller gets a :class:`ToolRefusal` (tool name, arguments, reasons,
feedback) that an agent can read and act on, or a :class:`ToolRefused` error with ``on_refusal="raise"``::

    transfer = guard_tool(transfer, run=run, verifiers=[lambda a: Fail("too much") if a["amount"] > 100 else None])
    outcome = await transfer(amount=500, to="bob")      # ToolRefusal(...): the transfer never ran
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import inspect
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio
from interlock.monitor.agents.arguments import NotStrictJSON, argument_path, non_finite_path
from interlock.monitor.agents.tracing import tool_span
from interlock.monitor.errors import ConfigError, InterlockError
from interlock.monitor.execute import call_async_bounded, call_in_thread
from interlock.monitor.logs import get_logger
from interlock.monitor.scan import ascan_checks
from interlock.monitor.verdicts import Action, Fail, Pass, Span, Unknown, Verdict, ViolationError
from interlock.monitor.verifier import Verifier

if TYPE_CHECKING:
    from interlock.monitor.monitor import Run

__all__ = [
    "ArgumentCheck",
    "CheckRaised",
    "GuardedTool",
    "RefusalReason",
    "ToolCall",
    "ToolRefusal",
    "ToolRefused",
    "active_run",
    "guard_tool",
    "render_arguments",
    "use_run",
]

# A check of a call's arguments: a function of the bound arguments (sync or async) or a Verifier.
ArgumentCheck = Callable[[Mapping[str, Any]], Any] | Verifier

_ACTIVE_RUN: contextvars.ContextVar[Run | None] = contextvars.ContextVar("interlock_active_run", default=None)


def active_run() -> Run | None:
    """The run set by :func:`use_run` in this context (the agent adapter sets it for each model turn)."""
    return _ACTIVE_RUN.get()


@contextlib.contextmanager
def use_run(run: Run | None) -> Iterator[None]:
    """Make ``run`` the one that guarded tools without their own ``run=`` wait for, inside the block."""
    token = _ACTIVE_RUN.set(run)
    try:
        yield
    finally:
        _ACTIVE_RUN.reset(token)


@dataclass(frozen=True)
class ToolCall:
    """A tool call as a model asked for it: the tool's name and its arguments by name."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": dict(self.arguments)}


@dataclass(frozen=True)
class RefusalReason:
    """Why a call was refused: which check (``source``), at which stage, and about which argument."""

    stage: Literal["reasoning", "rollback", "arguments", "timeout", "error"]
    source: str
    message: str
    feedback: str = ""
    argument: str | None = None
    # stage "error": what the check raised, for the program that guards the tool; never in ``message``,
    # ``to_dict`` or ``to_message`` (its text may hold a secret, and those reach the model and a proxy's client)
    error: BaseException | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "source": self.source, "message": self.message, "feedback": self.feedback,
                "argument": self.argument}


@dataclass(frozen=True)
class ToolRefusal:
    """The structured answer an agent gets instead of the tool's result when a check failed.

    ``to_message()`` renders it as a JSON object a model can read (``{"refused": true, "tool": ..., ...}``).
    """

    tool: str
    arguments: Mapping[str, Any]
    reasons: tuple[RefusalReason, ...]
    verdicts: tuple[Verdict, ...] = ()
    refused: Literal[True] = field(default=True, init=False)

    @property
    def feedback(self) -> str:
        """What the agent should fix, in words: the reasons' feedback, one sentence each."""
        parts = []
        for r in self.reasons:
            text = (r.feedback or r.message).strip()
            if text and text not in parts:
                parts.append(text)
        return " ".join(parts)

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.stage for r in self.reasons))

    def to_dict(self) -> dict[str, Any]:
        return {"refused": True, "tool": self.tool, "arguments": _jsonable(self.arguments),
                "reasons": [r.to_dict() for r in self.reasons], "feedback": self.feedback}

    def to_message(self) -> str:
        """The refusal as the tool result an agent's model reads."""
        return json.dumps({"refused": True, "tool": self.tool, "arguments": _jsonable(self.arguments),
                           "reasons": [r.message for r in self.reasons], "feedback": self.feedback})

    def __str__(self) -> str:
        return f"{self.tool} refused: {self.feedback or 'a check failed'}"


class CheckRaised(InterlockError):
    """A ``Verifier`` used as an argument check raised (or timed out) in one of its checks: the message is the
    error as the check reported it (``RuntimeError: ...``). Kept in :attr:`RefusalReason.error` for the program;
    like any check's error, never shown to the model or a proxy's client."""


class ToolRefused(InterlockError):
    """Raised instead of returning a :class:`ToolRefusal` when the tool was guarded with ``on_refusal="raise"``."""

    def __init__(self, refusal: ToolRefusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


def _jsonable(arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, str | int | float | bool | type(None) | list | dict) else repr(v)
            for k, v in arguments.items()}


def render_arguments(arguments: Mapping[str, Any]) -> str:
    """The text a :class:`Verifier` scans for an argument check: one ``name = value`` line per argument
    (values as JSON; strings quoted), so a span maps back to the argument it is in."""
    lines = []
    for key, value in arguments.items():
        try:
            rendered = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            rendered = repr(value)
        lines.append(f"{key} = {rendered}\n")
    return "".join(lines)


def _value_at(value: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def _argument_at(arguments: Mapping[str, Any], text: str, position: int | None) -> str | None:
    if position is None:
        return None
    start = 0
    for key, line in zip(arguments, text.splitlines(keepends=True), strict=False):
        if start <= position < start + len(line):
            return key
        start += len(line)
    return None


def _normalise(result: Any, source: str) -> list[Verdict]:
    if result is None or result is True:
        return [Pass(verifier=source)]
    if result is False:
        return [Fail(f"{source} rejected the arguments", verifier=source)]
    items = list(result) if isinstance(result, list | tuple) else [result]
    out: list[Verdict] = []
    for item in items:
        if not isinstance(item, Pass | Fail | Unknown):
            raise TypeError(f"argument check {source!r} returned {type(item).__name__}, not a verdict")
        out.append(item if item.verifier else dataclasses.replace(item, verifier=source))
    return out or [Pass(verifier=source)]


def _is_async_check(check: Callable[..., Any]) -> bool:
    call = None if inspect.isroutine(check) else next(
        (k.__dict__["__call__"] for k in type(check).__mro__ if "__call__" in k.__dict__), None)
    return inspect.iscoroutinefunction(check) or inspect.iscoroutinefunction(call)


def _issue_point(run: Run | None) -> tuple[int, int] | None:
    """(epoch, length) of the run's trace when a call was made: the reasoning the call was issued from."""
    return None if run is None else (run.trace.epoch, len(run.trace))


def _rolled_back(run: Run | None, issued: tuple[int, int] | None) -> list[RefusalReason]:
    """A refusal reason when a rollback has cut the trace below the point the call was issued at."""
    if run is None or issued is None:
        return []
    epoch, position = issued
    if run.trace.still_valid(epoch, Span(0, position)):
        return []
    cuts = [i for i in run.interventions
            if i.action is Action.ROLLBACK and i.applied and i.epoch >= epoch and i.position < position]
    cause = f" ({cuts[0].source}: {cuts[0].message})" if cuts else ""
    where = cuts[0].position if cuts else len(run.trace)
    message = (f"the reasoning this call was made from was rolled back{cause}: the trace was cut at character "
               f"{where}, before the {position} it had when the call was made")
    return [RefusalReason("rollback", cuts[0].source if cuts else "rollback", message,
                          feedback="The reasoning behind this call was rolled back; redo it before calling again.")]


def _check_name(check: ArgumentCheck) -> str:
    if isinstance(check, Verifier):
        return check.name
    name = getattr(check, "__name__", None) or type(check).__name__
    return "argument-check" if name == "<lambda>" else str(name).replace("_", "-")


class GuardedTool:
    """A tool that waits for the reasoning's checks and checks its own arguments before it runs.

    Call it like the tool (``await guarded(amount=5)``): it returns the tool's result, or a :class:`ToolRefusal`.
    ``await guarded.call({"amount": 5})`` does the same with arguments as a model sends them.
    """

    def __init__(self, fn: Callable[..., Any], *, run: Run | Callable[[], Run | None] | None = None,
                 verifiers: Sequence[ArgumentCheck] = (), read_only: bool = False, name: str | None = None,
                 description: str | None = None, barrier_timeout: float = 60.0, check_timeout: float = 10.0,
                 tool_timeout: float | None = 300.0, fail_closed: bool = True, in_thread: bool = False,
                 on_refusal: Literal["return", "raise"] = "return") -> None:
        if not callable(fn):
            raise ConfigError(f"guard_tool: {fn!r} is not callable")
        for label, value in (("barrier_timeout", barrier_timeout), ("check_timeout", check_timeout)):
            if not (isinstance(value, int | float) and value > 0):
                raise ConfigError(f"guard_tool: {label} must be a positive number of seconds, got {value!r}")
        if tool_timeout is not None and not (isinstance(tool_timeout, int | float) and tool_timeout > 0):
            raise ConfigError(f"guard_tool: tool_timeout must be a positive number of seconds or None, "
                              f"got {tool_timeout!r}")
        if on_refusal not in ("return", "raise"):
            raise ConfigError(f"guard_tool: on_refusal must be 'return' or 'raise', got {on_refusal!r}")
        for check in verifiers:
            if not (isinstance(check, Verifier) or callable(check)):
                raise ConfigError(f"guard_tool: argument check {check!r} is neither a Verifier nor callable")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        self.description = description if description is not None else (inspect.getdoc(fn) or "").split("\n")[0]
        self.run = run
        self.verifiers = tuple(verifiers)
        self.read_only = read_only
        self.barrier_timeout = float(barrier_timeout)
        self.check_timeout = float(check_timeout)
        self.tool_timeout = tool_timeout
        self.fail_closed = fail_closed
        self.in_thread = in_thread
        self.on_refusal = on_refusal
        self.signature = inspect.signature(fn)
        self.calls = 0  # times the tool actually ran
        self.refusals = 0
        functools.update_wrapper(self, fn, updated=())

    def __repr__(self) -> str:
        kind = "read-only" if self.read_only else "write"
        return f"<GuardedTool {self.name!r} {kind}, {len(self.verifiers)} argument checks>"

    # -- public API ----------------------------------------------------------------------------------
    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        arguments = self.bind(*args, **kwargs)
        return await self._traced(arguments, "", self._guarded)

    async def call(self, arguments: Mapping[str, Any], *, call_id: str = "") -> Any:
        """Call with arguments by name, as a model sends them; arguments that do not fit the tool's signature
        are refused (stage ``"arguments"``) rather than raised, so the agent can correct them. ``call_id``: the
        model's id for the call (recorded on the call's span when tracing is on)."""
        return await self._traced(arguments, call_id, self._call)

    async def _call(self, arguments: Mapping[str, Any]) -> Any:
        if not isinstance(arguments, Mapping):
            return self._refuse({}, [RefusalReason("arguments", "signature",
                                                   f"arguments must be an object, got {type(arguments).__name__}")])
        try:
            bound = self.bind(**arguments)
        except TypeError as exc:
            return self._refuse(arguments, [RefusalReason("arguments", "signature", str(exc),
                                                          feedback=f"Call {self.name}{self.signature} correctly: "
                                                                   f"{exc}.")])
        return await self._guarded(bound)

    async def review(self, arguments: Mapping[str, Any]) -> ToolRefusal | None:
        """Run the guard's checks without calling the tool: ``None`` when the call would go through."""
        run = self._write_run()
        issued = _issue_point(run)
        reasons, verdicts = await self._checks(dict(arguments), run, issued)
        reasons = _rolled_back(run, issued) + reasons
        if reasons:
            return ToolRefusal(self.name, dict(arguments), tuple(reasons), tuple(verdicts))
        return None

    def bind(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The call's arguments by parameter name, defaults applied; ``TypeError`` when they do not fit."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def with_run(self, run: Run | Callable[[], Run | None] | None) -> GuardedTool:
        """A copy of this guard that waits for ``run``'s barrier."""
        clone = object.__new__(GuardedTool)
        clone.__dict__.update(self.__dict__)
        clone.run = run
        clone.calls = 0
        clone.refusals = 0
        return clone

    # -- internals -----------------------------------------------------------------------------------
    async def _traced(self, arguments: Any, call_id: str, body: Callable[[Any], Any]) -> Any:
        """``body(arguments)`` inside the call's ``execute_tool`` span when tracing is on (its outcome: ran,
        refused and why, or raised)."""
        span = tool_span(name=self.name, description=self.description, read_only=self.read_only, call_id=call_id,
                         arguments=arguments if isinstance(arguments, Mapping) else {},
                         spans=getattr(self.run if self.run is not None else active_run(), "spans", None))
        if span is None:
            return await body(arguments)
        with span:
            try:
                value = await body(arguments)
            except ToolRefused as exc:
                span.refused(exc.refusal)
                raise
            except BaseException as exc:
                span.failed(exc)
                raise
            if isinstance(value, ToolRefusal):
                span.refused(value)
            else:
                span.ran(value)
            return value

    def _resolve_run(self) -> Run | None:
        source = self.run
        if source is None:
            return active_run()
        from interlock.monitor.monitor import Run

        if isinstance(source, Run):
            return source
        return source()

    def _write_run(self) -> Run | None:
        """The run whose barrier a write tool waits for (``None`` for a read-only tool)."""
        if self.read_only:
            return None
        run = self._resolve_run()
        if run is None:
            raise ConfigError(f"tool {self.name!r} writes (read_only=False) but has no run to wait for: pass "
                              f"guard_tool(..., run=run) or call it inside interlock.use_run(run)")
        return run

    async def _guarded(self, arguments: dict[str, Any]) -> Any:
        run = self._write_run()
        issued = _issue_point(run)  # the trace the call was made from, before anything is awaited
        reasons, verdicts = await self._checks(arguments, run, issued)
        # no await between this last look at the trace and the call: a rollback cannot slip in between
        reasons = _rolled_back(run, issued) + reasons
        if reasons:
            return self._refuse(arguments, reasons, verdicts)
        self.calls += 1
        return await self._invoke(arguments)

    def _refuse(self, arguments: Mapping[str, Any], reasons: Sequence[RefusalReason],
                verdicts: Sequence[Verdict] = ()) -> ToolRefusal:
        self.refusals += 1
        refusal = ToolRefusal(self.name, dict(arguments), tuple(reasons), tuple(verdicts))
        if self.on_refusal == "raise":
            raise ToolRefused(refusal)
        return refusal

    async def _checks(self, arguments: dict[str, Any], run: Run | None,
                      issued: tuple[int, int] | None) -> tuple[list[RefusalReason], list[Verdict]]:
        reasons: list[RefusalReason] = []
        verdicts: list[Verdict] = []
        bad = non_finite_path(arguments)
        if bad is not None:  # never passed to a check or the tool: `amount <= 100` is False for NaN
            written = repr(_value_at(arguments, bad))
            problem = NotStrictJSON(bad, {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(written, written))
            return [RefusalReason("arguments", "strict-json", problem.argument_message(),
                                  feedback=f"Send {argument_path(bad)} as a finite number.",
                                  argument=str(bad[0]))], []
        if run is not None:
            try:
                await run.barrier(timeout=self.barrier_timeout)
            except ViolationError as exc:
                # a warning is reported, never enforced; text written after the call was made is not its reasoning
                counted = [v for v in exc.verdicts if not (isinstance(v, Fail) and v.action is Action.WARN)
                           and (issued is None or v.span is None or v.span.start < issued[1])]
                for v in counted:
                    message = getattr(v, "message", "") or getattr(v, "reason", "")
                    feedback = v.feedback_text if isinstance(v, Fail) else message
                    reasons.append(RefusalReason("reasoning", v.verifier or "verifier", message, feedback=feedback))
                verdicts.extend(counted)
            except TimeoutError:
                reasons.append(RefusalReason("timeout", "barrier", f"the checks of the reasoning did not finish "
                                             f"within {self.barrier_timeout:g} s"))
        for check in self.verifiers:
            found, seen = await self._check_arguments(check, arguments)
            reasons.extend(found)
            verdicts.extend(seen)
        return reasons, verdicts

    async def _check_arguments(self, check: ArgumentCheck,
                               arguments: dict[str, Any]) -> tuple[list[RefusalReason], list[Verdict]]:
        source = _check_name(check)
        text = render_arguments(arguments)
        try:
            with anyio.fail_after(self.check_timeout):
                if isinstance(check, Verifier):
                    outcomes = await ascan_checks(check, text, prompt=f"{self.name} arguments")
                    errors = [o.error for o in outcomes if o.error is not None]
                    if errors:  # (its Unknown's reason is the error's text: refused below like a function's)
                        raise CheckRaised("; ".join(errors))
                    verdicts: list[Verdict] = [v for o in outcomes for v in o.verdicts]
                elif _is_async_check(check):  # in a task of its own: cancelled at the timeout, even if it resists
                    verdicts = _normalise(await call_async_bounded(check(dict(arguments))), source)
                else:  # in a daemon thread: a check that blocks or spins cannot hold up the event loop
                    result = await call_in_thread(check, dict(arguments))
                    if inspect.isawaitable(result):
                        result = await call_async_bounded(result)
                    verdicts = _normalise(result, source)
        except TimeoutError:
            reason = RefusalReason("timeout", source, f"argument check {source!r} did not finish within "
                                   f"{self.check_timeout:g} s")
            return ([reason] if self.fail_closed else []), []
        except Exception as exc:
            # the detail goes to the operator's log only: an exception's text may hold a secret (a connection
            # string, a key) and the refusal reaches the model, and through the proxy the client. A function and
            # a Verifier (whose checks' errors come back as CheckRaised) are refused in the same words.
            get_logger(component="tools").warning(
                "argument check raised", tool=self.name, check=source,
                error=str(exc) if isinstance(exc, CheckRaised) else f"{type(exc).__name__}: {exc}")
            reason = RefusalReason("error", source, f"argument check {source!r} failed with an error (details in "
                                   f"the log)", error=exc)
            closed = self.fail_closed or (isinstance(check, Verifier) and check.fail_closed)
            return ([reason] if closed else []), []
        reasons = []
        for v in verdicts:
            if isinstance(v, Fail):
                where = _argument_at(arguments, text, v.span.start if v.span is not None else None)
                reasons.append(RefusalReason("arguments", v.verifier or source, v.message,
                                             feedback=v.feedback_text, argument=where))
            elif isinstance(v, Unknown) and (self.fail_closed or (isinstance(check, Verifier) and check.fail_closed)):
                reasons.append(RefusalReason("arguments", v.verifier or source,
                                             f"could not decide: {v.reason}" if v.reason else "could not decide"))
        return reasons, verdicts

    async def _invoke(self, arguments: dict[str, Any]) -> Any:
        call = functools.partial(self.fn, **arguments)
        with anyio.fail_after(self.tool_timeout):
            if inspect.iscoroutinefunction(self.fn):
                return await call()
            if self.in_thread:  # a daemon thread: abandoned at the timeout, it never keeps the process alive
                return await call_in_thread(call)
            result = call()
            if inspect.isawaitable(result):
                return await result
            return result


def guard_tool(fn: Callable[..., Any] | None = None, *, run: Run | Callable[[], Run | None] | None = None,
               verifiers: Sequence[ArgumentCheck] = (), read_only: bool = False, name: str | None = None,
               description: str | None = None, barrier_timeout: float = 60.0, check_timeout: float = 10.0,
               tool_timeout: float | None = 300.0, fail_closed: bool = True, in_thread: bool = False,
               on_refusal: Literal["return", "raise"] = "return") -> Any:
    """Wrap a tool so that it runs only after the run's checks passed and its arguments passed ``verifiers``.

    - ``run``: the :class:`~monitor.Run` whose barrier to wait for, a function returning it, or ``None`` for the
      run set with :func:`use_run` (the agent adapter sets it for each turn).
    - ``read_only``: skip the barrier (the argument checks still apply); a read can do no harm.
    - ``barrier_timeout``/``check_timeout``/``tool_timeout``: seconds; a barrier or check that times out refuses
      the call, a tool that times out raises ``TimeoutError``.
    - ``fail_closed``: an argument check that raises, times out or returns ``Unknown`` refuses the call.
    - ``in_thread``: run a sync tool in a worker thread instead of the event loop.
    - ``on_refusal``: return a :class:`ToolRefusal` (default) or raise :class:`ToolRefused`.

    Usable as a decorator, with or without options.
    """
    options: dict[str, Any] = dict(run=run, verifiers=verifiers, read_only=read_only, name=name,
                                   description=description, barrier_timeout=barrier_timeout,
                                   check_timeout=check_timeout, tool_timeout=tool_timeout, fail_closed=fail_closed,
                                   in_thread=in_thread, on_refusal=on_refusal)
    if fn is None:
        return lambda f: GuardedTool(f, **options)
    return GuardedTool(fn, **options)

