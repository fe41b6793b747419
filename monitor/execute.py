"""Run one check (extract + check) where the verifier asked, under its timeout, and never let it raise.

An exception, a timeout or a result that is not a verdict becomes an ``Unknown`` verdict plus an error
message for the error event: a verifier can never pass silently by failing.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_process
import anyio.to_thread
from interlock.monitor.trace import TraceView
from interlock.monitor.verdicts import Unknown, Verdict
from interlock.monitor.verifier import VerdictTypeError, Verifier, normalize_verdicts

__all__ = ["CheckOutcome", "run_check"]


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
