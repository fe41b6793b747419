"""A verifier's own time budget measures its work, not the time its thread waits to run.

The arithmetic verifier judges a step within ``Limits.seconds`` (0.1 s) and reads a long step's windows within
``window_seconds``; the Game of 24 solver searches within ``seconds``. On a loaded machine (a load average of 10
on 2 cores) a process waits for a CPU far longer than a short GSM8K step takes to judge; measured on the wall
clock, that wait spent the budget and a check of ``33 + 99 + 30 = 162`` came back ``Unknown`` ("the time limit of
100 ms per step") in one replay engine and not in the other. The budgets now count the checking thread's CPU time.

Here another thread holds the GIL in long C calls, so the checking thread waits as it would for a CPU: its wall
time passes the budget while its own work stays far below it.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
from interlock.verifiers.arithmetic import verifier as arithmetic
from interlock.verifiers.arithmetic.parse import Limits
from interlock.verifiers.arithmetic.verifier import check_text
from interlock.verifiers.game24 import solver
from interlock.verifiers.game24.solver import solvable, solvable_within

T = TypeVar("T")


class Hog:
    """A thread that holds the GIL in C calls of some 100-200 ms, with switches asked for every 5 ms: each 5 ms of
    another thread's work is followed by a wait for it, as for a CPU on a loaded machine. (Every 1 ms, the waiting
    thread's own wake-ups inflated its CPU time six times on a virtual machine.)"""

    def __init__(self) -> None:
        self.calls = 0  # C calls finished
        self.finished = threading.Condition()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            sum(range(15_000_000))  # one C call: the GIL is not given up inside it
            with self.finished:
                self.calls += 1
                self.finished.notify_all()

    def wait_out(self, seconds: float) -> None:
        """Block the calling thread for ``seconds`` and at least two of the hog's C calls: it waits as for a CPU
        (a whole C call of the hog passes while it waits for the GIL), without doing work of its own. Whether the
        switch interval happens to fall inside a few milliseconds of judging is chance (under another load it
        never did); this wait is not."""
        until = time.perf_counter() + seconds
        with self.finished:
            at_least = self.calls + 2
            while self.calls < at_least or time.perf_counter() < until:
                assert self.finished.wait(timeout=30), "the GIL hog stopped"

    def first_call_waits(self, fn: Callable[..., T], seconds: float) -> Callable[..., T]:
        """``fn``, whose first call first waits out ``seconds`` (:meth:`wait_out`): put in place of a function the
        budgeted code calls, the wait falls inside the budget its caller has started."""
        waited = False

        def waiting_once(*args: Any, **kwargs: Any) -> T:
            nonlocal waited
            if not waited:
                waited = True
                self.wait_out(seconds)
            return fn(*args, **kwargs)

        return waiting_once


@contextmanager
def gil_held_elsewhere() -> Iterator[Hog]:
    """A :class:`Hog` running for the block."""
    hog = Hog()
    interval = sys.getswitchinterval()
    thread = threading.Thread(target=hog.run, daemon=True)
    sys.setswitchinterval(0.005)
    thread.start()
    try:
        time.sleep(0.01)
        yield hog
    finally:
        hog.stop.set()
        thread.join(timeout=30)
        sys.setswitchinterval(interval)


def timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    wall, cpu = time.perf_counter(), time.thread_time()
    value = fn()
    return value, time.perf_counter() - wall, time.thread_time() - cpu


def claims(seed: int, n: int) -> str:
    """``n`` powers, each judged with sympy: some milliseconds of judging in all."""
    rng = random.Random(seed)
    bases = [rng.randint(2, 60) for _ in range(n)]
    return " ".join(f"So {b}^{b % 20 + 3} = {b ** (b % 20 + 3)}." for b in bases)


def test_waiting_to_run_does_not_spend_a_steps_judging_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = Limits()
    check_text(claims(1, 3), limits)  # sympy imported, caches warm: what is timed is judging alone
    judging: list[tuple[float, float]] = []  # wall and CPU seconds of each step's judging (the budgeted part)
    judge_all = arithmetic._judge_all

    with gil_held_elsewhere() as hog:
        judge_after_a_wait = hog.first_call_waits(judge_all, 1.5 * limits.seconds)  # (the step's deadline is set)

        def timed_judging(*args: Any) -> Any:
            found, wall, cpu = timed(lambda: judge_after_a_wait(*args))
            judging.append((wall, cpu))
            return found

        monkeypatch.setattr(arithmetic, "_judge_all", timed_judging)
        found = check_text(claims(3, 60), limits)
    ((wall, cpu),) = judging
    assert wall > limits.seconds > 2 * cpu  # (what the test is about: the wait, not the work, passed the budget)
    assert [f.status for f in found] == ["ok"] * 60  # (a budget on the wall clock: "unknown", the time limit)


def test_waiting_to_run_does_not_stop_the_reading_of_a_long_steps_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    # (a window's work is milliseconds; waiting for the GIL inflates even the thread's CPU time several times on a
    # virtual machine, so the window's budget leaves room for that, and the wait still passes it many times over)
    limits = Limits(window_seconds=0.2, max_step_chars=1_000, window_overlap=200)
    text = "\n".join(f"Line {i}: so {i} + {i} = {2 * i}." for i in range(400))
    unhurried = check_text(text, dataclasses.replace(limits, window_seconds=30.0))
    assert len(unhurried) > 100 and {f.status for f in unhurried} == {"ok"}
    check_one = arithmetic._check_one
    windows: list[str] = []
    with gil_held_elsewhere() as hog:
        # (inside the first window: the next one looks at the time the reading took)
        read_after_a_wait = hog.first_call_waits(check_one, 1.5 * limits.window_seconds)

        def counted_window(window: str, *args: Any, **kwargs: Any) -> Any:
            windows.append(window)
            return read_after_a_wait(window, *args, **kwargs)

        monkeypatch.setattr(arithmetic, "_check_one", counted_window)
        found, wall, _ = timed(lambda: check_text(text, limits))
    assert wall > limits.window_seconds  # the reading waited longer than a window may take (its CPU is per window)
    assert len(windows) > 10  # every window was read, none left "not checked" for the time
    assert found == unhurried


def test_waiting_to_run_does_not_spend_the_game24_searchs_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    numbers = [1, 1, 2, 1, 83, 1]  # no way to 24: the search visits every state it can reach (some 50 ms of work)
    assert solvable(numbers) is False
    with gil_held_elsewhere() as hog:  # (the search's deadline is set before it first combines two numbers)
        monkeypatch.setattr(solver, "_combine", hog.first_call_waits(solver._combine, 1.2))
        found, wall, cpu = timed(lambda: solvable_within(numbers, seconds=1.0))
    assert wall > 1.0 > cpu  # (the GIL waits inflate the search's CPU time too, some 6x here: room for that)
    assert found is False  # (a budget on the wall clock: None, undecided)


def test_a_pickled_arithmetic_verifier_imports_sympy_as_it_is_unpickled() -> None:
    """A replay worker gets its verifiers pickled: the import is start-up work, done before the worker says it is
    ready, not inside its first check (whose 5 s timeout, on a loaded machine, it used to pass)."""
    import pickle
    import subprocess

    from interlock.verifiers.arithmetic import Arithmetic

    code = ("import pickle, sys; import interlock.verifiers.arithmetic; assert 'sympy' not in sys.modules; "
            "v = pickle.loads(sys.stdin.buffer.read()); print(type(v).__name__, 'sympy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(Arithmetic()), capture_output=True,
                          timeout=120)
    assert done.stdout.decode().split() == ["Arithmetic", "True"], done.stderr.decode()
