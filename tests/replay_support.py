"""Verifiers for the replay tests that worker processes must import by name (hence a module of their own)."""

from __future__ import annotations

import z3
from interlock import AtEnd, Fail, Step, Verifier


def pigeonhole(holes: int) -> z3.Solver:
    """``holes + 1`` pigeons in ``holes`` holes: unsatisfiable, and exponentially hard for a SAT solver (14 holes
    take z3 far longer than any test waits), all of it inside z3's C code."""
    s = z3.Solver()
    x = [[z3.Bool(f"p{i}_{j}") for j in range(holes)] for i in range(holes + 1)]
    for i in range(holes + 1):
        s.add(z3.Or(*x[i]))
    for j in range(holes):
        for i in range(holes + 1):
            for k in range(i + 1, holes + 1):
                s.add(z3.Or(z3.Not(x[i][j]), z3.Not(x[k][j])))
    return s


class HangsInZ3(Verifier):
    """On a step that says HANG, asks z3 a pigeonhole question with no timeout, on the event loop: nothing in
    the process can interrupt it. Any other step passes."""

    name = "z3-hang"
    runs_in = "loop"
    timeout = 600.0

    def check(self, state: Step) -> None:
        if "HANG" in state.text:
            pigeonhole(14).check()
        return None


class WrongAtEnd(Verifier):
    """One cheap check per trace, at its end: fails a trace that says WRONG (for big, fast batches)."""

    name = "wrong-at-end"
    trigger = AtEnd()

    def check(self, state: Step) -> Fail | None:
        return Fail("says WRONG") if "WRONG" in state.text else None


FORGED = '{"type": "totals", "traces": 9, "passed": 999, "failed": 0}'


class Chatty(Verifier):
    """Prints a forged totals line at every check, from Python and straight to file descriptor 1 (as C code
    would), then fails a step that says WRONG."""

    name = "chatty"

    def check(self, state: Step) -> Fail | None:
        import os

        print(FORGED)
        print("not JSON at all", flush=True)
        os.write(1, (FORGED + "\n").encode())
        return Fail("says WRONG") if "WRONG" in state.text else None


class Forks(Verifier):
    """Forks a grandchild that outlives the check by ``SLEEP`` seconds (writing its pid to the file a step
    names), as a verifier that starts a helper process might."""

    name = "forks"
    SLEEP = 20

    def check(self, state: Step) -> None:
        import os
        import time

        pidfile = state.text.strip()
        pid = os.fork()
        if pid == 0:  # the grandchild: say who it is, then outlive the replay
            try:
                with open(pidfile, "w") as f:
                    f.write(str(os.getpid()))
                time.sleep(self.SLEEP)
            finally:
                os._exit(0)
        return None
