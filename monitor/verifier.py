"""The verifier API: a small class or a plain function, an extractor, a trigger, where it runs, a timeout.

A verifier turns a :class:`TraceView` into state (``extract``) and the state into verdicts (``check``)::

    @verifier(name="no-negative-money", action="rollback")
    def no_negative(step: Step) -> Fail | None:
        if "-$" in step.text:
            return Fail("amounts of money cannot be negative", feedback="Money cannot be negative.")
        return None

``check`` may return a verdict, a list of verdicts, ``True``/``None`` (pass) or ``False`` (fail); anything
else is an error that the monitor reports as ``Unknown``. ``verifier.scan(text)`` runs the verifier over a
complete text exactly as if it had streamed, which is how users test their own verifiers.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterable
from typing import Any, Literal

from interlock.monitor.errors import ConfigError
from interlock.monitor.phases import BOTH, PhaseFilter, ThinkingTags, check_phase_filter
from interlock.monitor.trace import TraceView
from interlock.monitor.triggers import StepBoundary, Trigger
from interlock.monitor.verdicts import Action, Verdict

__all__ = ["FunctionVerifier", "RunsIn", "Verifier", "verifier"]

RunsIn = Literal["loop", "thread", "process"]
_RUNS_IN = ("loop", "thread", "process")
_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


class Verifier:
    """Base class of verifiers. Subclasses set the class attributes and implement :meth:`check`.

    - ``trigger``: when it is due (default: every step boundary, and the final step).
    - ``runs_in``: ``"thread"`` (the default: a daemon worker thread, so no check can block the event loop that
      runs generation and the other checks), ``"process"`` (CPU-heavy pure Python; the verifier and its state must
      pickle; a warm worker that is killed at the timeout), or ``"loop"``: the opt-in for checks measured to be
      cheap and bounded (the built-in arithmetic), which then run on the event loop and cannot be pre-empted.
      An ``async`` check always runs on the loop, in a task of its own.
    - ``timeout``: seconds for extract + check; past it the verdict is ``Unknown`` (never ``Pass``), wherever the
      check runs: see :mod:`interlock.monitor.execute`.
    - ``action``: what a ``Fail`` without its own action asks for.
    - ``fail_closed``: treat ``Unknown`` (timeout, error) as a violation that interrupts the run.
    - ``reads_chunks``: set False when :meth:`extract` never looks at ``view.chunks`` (token ids, logprobs):
      the monitor then does not gather them for each check.
    - ``phase``: which text of a reasoning model it checks: ``"both"`` (the default: the thinking and the
      answer), ``"thinking"`` or ``"answer"`` (e.g. a format check of the final answer alone).
    """

    name: str = "verifier"
    trigger: Trigger = StepBoundary()
    runs_in: RunsIn = "thread"
    timeout: float = 10.0
    action: Action = Action.ROLLBACK
    fail_closed: bool = False
    reads_chunks: bool = True
    description: str = ""
    phase: PhaseFilter = BOTH

    def __init__(self, *, name: str | None = None, trigger: Trigger | None = None, runs_in: RunsIn | None = None,
                 timeout: float | None = None, action: Action | str | None = None,
                 fail_closed: bool | None = None, phase: PhaseFilter | None = None) -> None:
        if name is not None:
            self.name = name
        if trigger is not None:
            self.trigger = trigger
        if runs_in is not None:
            self.runs_in = runs_in
        if timeout is not None:
            self.timeout = timeout
        if action is not None:
            self.action = Action.parse(action)
        if fail_closed is not None:
            self.fail_closed = fail_closed
        if phase is not None:
            self.phase = phase
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the attribute that is wrong."""
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(f"verifier name {self.name!r} must be non-empty letters, digits, '_', '.', ':' or '-'")
        if not isinstance(self.trigger, Trigger):
            raise ConfigError(f"verifier {self.name!r}: trigger must be a Trigger, got {self.trigger!r}")
        if self.runs_in not in _RUNS_IN:
            raise ConfigError(f"verifier {self.name!r}: runs_in must be one of {_RUNS_IN}, got {self.runs_in!r}")
        if not (isinstance(self.timeout, int | float) and self.timeout > 0):
            raise ConfigError(f"verifier {self.name!r}: timeout must be a positive number of seconds")
        self.action = Action.parse(self.action)
        self.phase = check_phase_filter(self.phase, f"verifier {self.name!r}: phase")

    @classmethod
    def applies_to(cls, prompt: str) -> bool:
        """Whether this verifier, made with no options, is worth running on ``prompt``: what ``interlock run``
        picks when no verifier is named. Default: no (a verifier that needs options, such as a problem spec)."""
        return False

    def extract(self, view: TraceView) -> Any:
        """Turn a view of the trace into the state :meth:`check` judges. Default: the step being checked."""
        return view.step

    @property
    def extracts_async(self) -> bool:
        """Whether :meth:`extract` returns an awaitable (it then runs in the event loop, whatever ``runs_in``)."""
        return inspect.iscoroutinefunction(self.extract)

    @property
    def extracts_step(self) -> bool:
        """Whether :meth:`extract` is the default (the step): a process check is then sent the step, not the view
        (the whole text up to it)."""
        return type(self).extract is Verifier.extract

    @property
    def checks_async(self) -> bool:
        """Whether :meth:`check` returns an awaitable (it then runs in the event loop, whatever ``runs_in``)."""
        return inspect.iscoroutinefunction(self.check)

    def check(self, state: Any) -> Any:
        """Judge the state; see the module docstring for what it may return. May be ``async``."""
        raise NotImplementedError(f"{type(self).__name__} must implement check()")

    def scan(self, text: str, *, prompt: str = "", tags: Iterable[ThinkingTags] | None = None) -> list[Verdict]:
        """Run this verifier over a complete ``text`` as if it had streamed; returns its verdicts in order.

        Text between thinking tags (``<think>`` … ``</think>`` and the other known pairs, or ``tags``; ``()`` for
        none) is thinking, as a backend that splits on tags would report it; a ``prompt`` that ends with an
        opening tag starts the text inside the thinking."""
        from interlock.monitor.scan import scan

        return scan(self, text, prompt=prompt, tags=tags)

    async def ascan(self, text: str, *, prompt: str = "", tags: Iterable[ThinkingTags] | None = None
                    ) -> list[Verdict]:
        """:meth:`scan` for code that already runs in an event loop."""
        from interlock.monitor.scan import ascan

        return await ascan(self, text, prompt=prompt, tags=tags)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} runs_in={self.runs_in} action={self.action.value}>"


def _lookup_function_verifier(module: str, qualname: str) -> FunctionVerifier:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, FunctionVerifier):
        raise ConfigError(f"{module}.{qualname} is not a function verifier")
    return obj


class FunctionVerifier(Verifier):
    """A verifier made from a plain function (see :func:`verifier`)."""

    def __init__(self, fn: Callable[[Any], Any], *, extractor: Callable[[TraceView], Any] | None = None,
                 **options: Any) -> None:
        self.fn = fn
        self.extractor = extractor
        self.reads_chunks = extractor is not None  # without an extractor the function sees only the step
        self.description = (inspect.getdoc(fn) or "").split("\n")[0]
        options.setdefault("name", getattr(fn, "__name__", "verifier").replace("_", "-"))
        super().__init__(**options)
        self._module = getattr(fn, "__module__", None)
        self._qualname = getattr(fn, "__qualname__", None)

    def extract(self, view: TraceView) -> Any:
        return self.extractor(view) if self.extractor is not None else view.step

    def check(self, state: Any) -> Any:
        return self.fn(state)

    @property
    def extracts_async(self) -> bool:
        return self.extractor is not None and _is_async_callable(self.extractor)

    @property
    def extracts_step(self) -> bool:
        return self.extractor is None and type(self).extract is FunctionVerifier.extract

    @property
    def checks_async(self) -> bool:
        return _is_async_callable(self.fn)

    def __reduce__(self) -> Any:
        # The decorator rebinds the function's global name to this object, so pickle by reference to it.
        if self._module and self._qualname and "<" not in self._qualname:
            try:
                if _lookup_function_verifier(self._module, self._qualname) is self:
                    return (_lookup_function_verifier, (self._module, self._qualname))
            except Exception:
                pass
        return super().__reduce__()


def verifier(fn: Callable[[Any], Any] | None = None, *, name: str | None = None, trigger: Trigger | None = None,
             runs_in: RunsIn | None = None, timeout: float | None = None, action: Action | str | None = None,
             fail_closed: bool | None = None, extractor: Callable[[TraceView], Any] | None = None,
             phase: PhaseFilter | None = None) -> Any:
    """Make a verifier from a function of the extracted state (by default the :class:`Step`); ``phase``:
    ``"thinking"``, ``"answer"`` or ``"both"`` (the default), the text of a reasoning model it checks."""

    def wrap(f: Callable[[Any], Any]) -> FunctionVerifier:
        return FunctionVerifier(f, extractor=extractor, name=name, trigger=trigger, runs_in=runs_in,
                                timeout=timeout, action=action, fail_closed=fail_closed, phase=phase)

    return wrap(fn) if fn is not None else wrap


def _is_async_callable(fn: Any) -> bool:
    """A coroutine function, or an object whose ``__call__`` is one (e.g. an extractor class instance)."""
    return inspect.iscoroutinefunction(fn) or (callable(fn) and inspect.iscoroutinefunction(type(fn).__call__))
