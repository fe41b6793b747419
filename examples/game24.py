"""Check Game of 24 reasoning step by step: arithmetic, available numbers, the "left" list, the final answer.

    python3 examples/game24.py                 # scripted traces (no model needed)
    python3 examples/game24.py --generate      # the embedded SmolLM2 model plays instead

The numbers come from the prompt (``Input: 4 9 10 13``, the Tree-of-Thoughts format) because ``Game24()`` is
built without them; ``Game24([4, 9, 10, 13])`` would fix them instead. ``dead_ends="warn"`` also reports a
correct step after which 24 can no longer be made (decided by an exact rational solver).
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio
from interlock import Fail, Monitor, Unknown
from interlock.generators import Scripted
from interlock.verifiers.game24 import Game24, solve

PROMPT = ("Use numbers and basic arithmetic operations (+ - * /) to obtain 24. Each step, you are only allowed to "
          "choose two of the remaining numbers to obtain a new number.\nInput: 4 9 10 13\n")

# one trace per kind of error, as a model might write it
TRACES = {
    "arithmetic": "13 - 9 = 4 (left: 4 4 10)\n10 - 4 = 5 (left: 4 5)\n",
    "unavailable number": "13 - 9 = 4 (left: 4 4 10)\n9 + 4 = 13 (left: 4 10 13)\n",
    "left bookkeeping": "13 - 9 = 4 (left: 4 10)\n",
    "dead end": "4 + 9 = 13 (left: 10 13 13)\n",
    "final answer": "Answer: (10 + 4) * (13 - 9) = 24\n",
    # the same checks in a chat model's notation
    "chat notation": "**Step 1:** 13 − 9 = 4. Remaining numbers: 4, 4, 10\n"
                     "**Step 2:** 10 − 4 = 6. Remaining numbers: 6, 10\n",
    "boxed answer": "$$\\boxed{(10 - 4) \\times (13 - 4)}$$\n",
}


def show(verdicts: list[Any], text: str) -> None:
    for v in verdicts:
        if isinstance(v, Fail) and v.span is not None:
            print(f"  FAIL [{v.span.start}:{v.span.end}] {text[v.span.start:v.span.end]!r}: {v.message}")
        elif isinstance(v, Unknown):
            print(f"  UNKNOWN: {v.reason}")


async def main(generate: bool) -> None:
    print("a solution from the exact solver:", solve([4, 9, 10, 13]))
    for kind, text in TRACES.items():
        print(f"\n{kind}:")
        show(await Game24(dead_ends="warn", require_answer=False).ascan(text, prompt=PROMPT), text)

    if generate:
        from interlock.generators import Transformers

        generator: Any = Transformers.default(max_new_tokens=120)
    else:  # a wrong step, then the corrected one after the monitor's feedback
        generator = Scripted({
            "": "13 - 9 = 4 (left: 4 4 10)\n10 - 4 = 5 (left: 4 5)\n4 * 5 = 20 (left: 20)\n",
            "Let me redo this step.\n": "10 - 4 = 6 (left: 4 6)\n4 * 6 = 24 (left: 24)\n"
                                        "Answer: (10 - 4) * (13 - 9) = 24\n",
        })
    result = await Monitor(generator, [Game24()]).run(PROMPT)
    print("\n--- monitored run ---\n" + result.text)
    for i in result.interventions:
        print(f"{i.action.value} at {i.position}: {i.message}")
    print(f"stop: {result.stop_reason.value}; passed: {result.passed}; tokens: {result.tokens.to_dict()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generate", action="store_true", help="let the embedded SmolLM2 model play")
    anyio.run(main, parser.parse_args().generate)
