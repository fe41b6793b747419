"""Quick start: watch a scripted generator with a verifier written in five lines, and see a rollback.

Run: python examples/quickstart.py
"""

from __future__ import annotations

import re

import anyio
from interlock import Fail, Intervened, Monitor, Step, verifier
from interlock.generators import Scripted

SUM = re.compile(r"(\d+) \+ (\d+) = (\d+)")


@verifier(name="sums")
def sums(step: Step) -> Fail | None:
    """Checks every "a + b = c" in a step."""
    for m in SUM.finditer(step.text):
        a, b, c = (int(g) for g in m.groups())
        if a + b != c:
            return Fail(f"{a} + {b} is {a + b}, not {c}", span=step.to_trace(*m.span()), claim=m.group())
    return None


# The "model": a wrong step first; after the feedback it writes the corrected one.
generator = Scripted({
    "": "Tom has 12 apples and buys 7 more.\nSo he has 12 + 7 = 18 apples.\nThe answer is 18.",
    "Let me redo this step.\n": "So he has 12 + 7 = 19 apples.\nThe answer is 19.",
}, rate=50)


async def main() -> None:
    monitor = Monitor(generator, verifiers=[sums])
    async with monitor.stream("Tom has 12 apples and buys 7 more. How many?") as run:
        async for event in run:
            if isinstance(event, Intervened) and event.intervention is not None:
                i = event.intervention
                print(f"[{i.action.value} at {i.position}] {i.message!r} -> injected {i.feedback!r}")
    result = run.result
    print(result.text)
    print(f"stop: {result.stop_reason.value}; passed: {result.passed}; tokens kept/discarded: "
          f"{result.tokens.kept}/{result.tokens.discarded}")


if __name__ == "__main__":
    anyio.run(main)
