"""Governors at work, without a model: a scripted "model" that loops like SmolLM2 does on the eggs problem.

The LoopGuard notices the repetition, rolls back to where it began and injects a nudge; when the model loops
again it forces the answer ("Final answer:") instead of letting it spend the rest of its budget. Every
governor decision is printed, a stop with the tokens it saved (the budget it leaves unspent).

    python examples/governors.py                  # the scripted model
    python examples/governors.py --model default  # the embedded SmolLM2 (needs transformers, ~30 s)
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio
from interlock import (
    FeedbackInjected,
    ForceAnswer,
    GovernorDecided,
    Intervened,
    LoopGuard,
    Monitor,
    TokenBudget,
)
from interlock.generators import Scripted

PROMPT = ("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for "
          "her friends every day with four. She sells the remainder for $2 per egg. How much does she make?")
LOOP = "So she has 16 eggs * 1 = 16 eggs * 1 = 16 eggs * 1 = 16 eggs * 1 = 16 eggs * 1 = 16 eggs * 1 = 16 eggs\n"


def scripted() -> Scripted:
    def model(prefix: str) -> str:
        if prefix.endswith("Final answer:"):
            return " $18\n"
        return "Janet's ducks lay 16 eggs per day.\n" + LOOP if not prefix else LOOP

    return Scripted(model)


async def main(generator: Any) -> None:
    answer = ForceAnswer(prefix="\nFinal answer:", tokens=12)
    monitor = Monitor(generator, governors=[TokenBudget(max_total=256, force_answer=answer),
                                            LoopGuard(force_answer=answer)])
    async with monitor.stream(PROMPT) as run:
        async for event in run:
            if isinstance(event, GovernorDecided):
                # a stop saves the budget it leaves unspent; a rollback saves nothing yet (tokens_saved is None)
                saved = f" (tokens saved: {event.tokens_saved})" if event.tokens_saved is not None else ""
                print(f"[{event.governor}] {event.action}: {event.reason}{saved}")
            elif isinstance(event, Intervened) and event.intervention is not None:
                print(f"  rolled back {event.intervention.tokens_discarded} tokens at {event.intervention.position}")
            elif isinstance(event, FeedbackInjected):
                print(f"  injected {event.text!r}")
    result = run.result
    print(f"\n{result.text}\n\nended: {result.stop_reason.value}; tokens: {result.tokens.to_dict()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="'default' for the embedded SmolLM2, or a path to a local model")
    args = parser.parse_args()
    if args.model:
        from interlock.generators import Transformers

        gen: Any = (Transformers.default(temperature=0.0) if args.model == "default"
                    else Transformers(args.model, temperature=0.0))
    else:
        gen = scripted()
    anyio.run(main, gen)
