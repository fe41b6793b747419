"""Run one check (extract + check) where the verifier asked, under its timeout, and never let it raise.

An exception, a timeout or a result that is not a verdict becomes an ``Unknown`` verdict plus an error
message for the error event: a verifier can never pass silently by failing.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_process
import anyio.to_thread
from interlock.monitor.trace import TraceView
from interlock.monitor.verdicts import Fail, Pass, Unknown, Verdict

if TYPE_CHECKING:
    from interlock.monitor.verifier import Verifier

__all__ = ["CheckOutcome", "VerdictTypeError", "normalize_verdicts", "run_check"]


class VerdictTypeError(TypeError):
    """A verifier returned something that is not a verdict; the monitor reports it as ``Unknown``."""


@dataclass(frozen=True)
class CheckOutcome:
    verdicts: list[Verdict]
    error: str | None
    seconds: float


def _extract_and_check(verifier: Verifier, view: TraceView) -> Any:
    return verifier.check(verifier.extract(view))


def _check_only(verifier: Verifier, state: Any) -> Any:
    return verifier.check(state)


async def _invoke(verifier: Verifier, view: TraceView) -> Any:
    async_extract = verifier.extracts_async
    async_check = verifier.checks_async
    if verifier.runs_in == "loop" or async_check:
        state = verifier.extract(view)
        if inspect.isawaitable(state):
            state = await state
        result = verifier.check(state)
        return await result if inspect.isawaitable(result) else result
    if async_extract:
        state = await verifier.extract(view)
        if verifier.runs_in == "thread":
            return await anyio.to_thread.run_sync(_check_only, verifier, state, abandon_on_cancel=True)
        return await anyio.to_process.run_sync(_check_only, verifier, state, cancellable=True)
    if verifier.runs_in == "thread":
        return await anyio.to_thread.run_sync(_extract_and_check, verifier, view, abandon_on_cancel=True)
    # A process cannot receive the view's fork handle; it only needs the text.
    plain = dataclasses.replace(view, fork=None)
    return await anyio.to_process.run_sync(_extract_and_check, verifier, plain, cancellable=True)


async def run_check(verifier: Verifier, view: TraceView) -> CheckOutcome:
    """Run ``verifier`` on ``view``; cancellation (a rollback removed the text) propagates."""
    started = time.perf_counter()
    error: str | None = None
    try:
        with anyio.fail_after(verifier.timeout):
            result = await _invoke(verifier, view)
        verdicts = normalize_verdicts(result, verifier=verifier, view=view)
    except TimeoutError:
        error = f"timed out after {verifier.timeout:g} s"
    except VerdictTypeError as exc:
        error = str(exc)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    if error is not None:
        verdicts = [Unknown(reason=error, verifier=verifier.name, epoch=view.epoch, span=view.step.span)]
    return CheckOutcome(verdicts=verdicts, error=error, seconds=time.perf_counter() - started)


def normalize_verdicts(result: Any, *, verifier: Verifier, view: TraceView) -> list[Verdict]:
    """Turn what ``check`` returned into verdicts with the verifier's name, the epoch and a valid span.

    Raises :class:`VerdictTypeError` for anything that is not a verdict, a bool, ``None`` or a list of verdicts,
    and for a span outside the text the verifier saw.
    """
    scope = view.step.span
    items: Sequence[Any]
    if result is None or result is True:
        items = [Pass()]
    elif result is False:
        items = [Fail(f"{verifier.name} rejected this step", feedback=None)]
    elif isinstance(result, Pass | Fail | Unknown):
        items = [result]
    elif isinstance(result, list | tuple):
        items = list(result) or [Pass()]
    else:
        raise VerdictTypeError(f"verifier {verifier.name!r} returned {type(result).__name__}, not a verdict")
    out: list[Verdict] = []
    for item in items:
        if not isinstance(item, Pass | Fail | Unknown):
            raise VerdictTypeError(f"verifier {verifier.name!r} returned a list holding {type(item).__name__}")
        v: Verdict = item.with_context(verifier=verifier.name, epoch=view.epoch, span=scope)
        if v.span is not None and v.span.end > view.end:
            raise VerdictTypeError(f"verifier {verifier.name!r} returned span [{v.span.start}, {v.span.end}) "
                                   f"beyond the {view.end} characters it saw")
        if isinstance(v, Fail) and v.action is None:
            v = dataclasses.replace(v, action=verifier.action)
        out.append(v)
    return out
