"""Governors on real problems: does the budget follow the problem instead of a fixed cap?

Problems from reasoning-gym (basic_arithmetic, gsm_symbolic, puzzle24; fixed seeds, easy settings) are solved
greedily by one local model (the embedded SmolLM2-135M-Instruct by default, any transformers folder or GGUF
file with ``--model``), loaded once, under each configuration:

- ``fixed``: unmonitored, a fixed cap of ``--cap`` new tokens (what people do today);
- ``verifiers``: the verifiers with rollback (``verifiers.Arithmetic``; ``verifiers.Game24`` on puzzle24), the
  same cap on kept tokens and twice it on the total;
- ``governors``: the same verifiers plus governors: ``TokenBudget(max_total=cap)`` that forces the answer,
  ``LoopGuard``, ``EntropyStop`` and ``AnswerConvergence``;
- ``pool``: like ``governors`` but the runs share a ``BudgetPool`` of ``--pool-per-run`` tokens per problem
  instead of a per-run cap.
- ``restart``: like ``governors``, but when the ``LoopGuard`` finds the loop again after its nudge it *restarts*
  the run instead of stopping it: a fresh attempt whose prompt is the question plus the steps the verifiers
  passed before the loop (``Monitor(max_restarts=--max-restarts)``; tokens of abandoned attempts count as
  discarded, within the same total cap).

For each it reports accuracy (reasoning-gym's scorer, on the answer extracted from the text), mean kept and
total tokens, interventions (applied rollbacks, nudges and governor stops), runs that hit the cap, and how many
of those were looping at the end (the LoopGuard's detector applied to the final text). Prints a JSON object
and then a markdown table.

    python benchmarks/governors_eval.py                       # ~10 min on 2 CPU cores (20 problems)
    python benchmarks/governors_eval.py --limit 2             # 2 problems per task: a quick look
    python benchmarks/governors_eval.py --model path/to/model --json results.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from interlock import (
    Action,
    AnswerConvergence,
    BudgetPool,
    Capabilities,
    Chunk,
    EntropyStop,
    ForceAnswer,
    GenerationRequest,
    Governor,
    GovernorDecided,
    LoopGuard,
    Monitor,
    RunResult,
    StopReason,
    TokenBudget,
    Verifier,
)

TASKS: dict[str, dict[str, Any]] = {
    # easy settings: the 135M model sometimes gets these right
    "basic_arithmetic": {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2},
    "gsm_symbolic": {},
    "puzzle24": {},
}
CONFIGS = ("fixed", "verifiers", "governors", "pool", "restart")
FORCE = ForceAnswer(prefix="\nFinal answer:", tokens=12)
# What the model writes when it states a result; AnswerConvergence stops once it says the same one 3 times.
STATED = (r"(?i)(?:answer|result|total|is|=)\s*(?::|is|of|equals)?\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)\s*(?:[.\n]|$)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_EXPR = re.compile(r"[\d(][\d+\-*/() ]*[\d)]")
_STOPPED = (StopReason.GOVERNOR, StopReason.OSCILLATION, StopReason.INTERVENTION_LIMIT, StopReason.INTERRUPTED)


@dataclass
class _Recording:
    prefix: str
    chunks: list[Chunk] = field(default_factory=list)
    complete: bool = False  # the stream ended on its own (EOS), not at max_new_tokens or by the consumer


class GreedyCache:
    """Replays greedy continuations already computed for the same prompt and prefix.

    Greedy decoding is deterministic, so every configuration would make the model produce the same tokens as
    the first one did until its run diverges (a rollback, an injected answer prefix); replaying them saves the
    2-core CPU minutes without changing a token count: a replayed chunk carries the same text, token ids,
    logprobs and entropy. Replay waits ``delay`` seconds per token, so that verifier checks get time between
    tokens as they do beside a live model (the generator never waits for a check: an instant replay would
    outrun every rollback). Forks pass through. ``hits``/``misses`` count replayed and generated tokens.
    """

    def __init__(self, generator: Any, delay: float = 0.02) -> None:
        self.generator = generator
        self.delay = delay
        self._runs: dict[str, list[_Recording]] = {}
        self.hits = 0
        self.misses = 0

    @property
    def capabilities(self) -> Capabilities:
        caps: Capabilities = self.generator.capabilities
        return caps

    def _find(self, prompt: str, prefix: str) -> tuple[_Recording, int] | None:
        best: tuple[_Recording, int] | None = None
        for rec in self._runs.get(prompt, ()):
            if not prefix.startswith(rec.prefix):
                continue
            rest, k = prefix[len(rec.prefix):], 0
            while rest and k < len(rec.chunks) and rest.startswith(rec.chunks[k].text):
                rest, k = rest[len(rec.chunks[k].text):], k + 1
            if rest:
                continue
            if best is None or len(rec.chunks) - k > len(best[0].chunks) - best[1] or rec.complete:
                best = (rec, k)
        return best

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        if request.purpose == "fork":
            async for chunk in self.generator.stream(request):
                yield chunk
            return
        prefix, left = request.prefix, request.max_new_tokens
        while (found := self._find(request.prompt, prefix)) is not None:
            rec, k = found
            for chunk in rec.chunks[k:]:
                if left is not None and chunk.n_tokens > left:
                    return
                self.hits += chunk.n_tokens
                await anyio.sleep(self.delay * chunk.n_tokens)
                yield chunk
                prefix += chunk.text
                left = None if left is None else left - chunk.n_tokens
            if rec.complete:
                return
            if rec.chunks[k:] == [] or (left is not None and left <= 0):
                break
        if left is not None and left <= 0:
            return
        rec = _Recording(prefix)
        self._runs.setdefault(request.prompt, []).append(rec)
        produced = 0
        async for chunk in self.generator.stream(dataclasses.replace(request, prefix=prefix, max_new_tokens=left)):
            rec.chunks.append(chunk)
            produced += chunk.n_tokens
            self.misses += chunk.n_tokens
            yield chunk
        limit = left if left is not None else getattr(self.generator, "max_new_tokens", None)
        rec.complete = limit is not None and produced < limit


@dataclass(frozen=True)
class Problem:
    task: str
    index: int
    question: str
    entry: dict[str, Any]
    dataset: Any


def load_problems(counts: dict[str, int], seed: int) -> list[Problem]:
    try:
        import reasoning_gym
    except ImportError:
        sys.exit("reasoning-gym is not installed: python3 -m pip install reasoning-gym")
    problems: list[Problem] = []
    for task, n in counts.items():
        if n <= 0:
            continue
        ds = reasoning_gym.create_dataset(task, seed=seed, size=n, **TASKS[task])
        problems.extend(Problem(task, i, e["question"], e, ds) for i, e in enumerate(ds))
    return problems


def extract_answer(task: str, text: str) -> str | None:
    """The answer a reader would take: the last number of the line after the last "Final answer:", else of the
    text (for puzzle24, the last expression with an operator)."""
    tail = text
    marker = text.lower().rfind("final answer")
    if marker >= 0:  # the answer's line: the first non-empty one after the marker
        tail = text[marker + len("final answer"):].lstrip(" :*\n").split("\n", 1)[0]
    if task == "puzzle24":
        exprs = [m.group().strip() for m in _EXPR.finditer(tail) if re.search(r"[+\-*/]", m.group())]
        return exprs[-1] if exprs else None
    numbers = _NUMBER.findall(tail)  # "15 * 3 = 40" answers 40: the last number, on the answer line too
    if not numbers:
        return None
    number: str = numbers[-1]
    return number.replace(",", "")


def looping(text: str) -> bool:
    """Whether the text ends in (or holds) a runaway repetition, by the LoopGuard's own detectors."""
    return LoopGuard().find(text) is not None


def make_verifiers(p: Problem, available: dict[str, Any]) -> list[Verifier]:
    out = []
    if "Arithmetic" in available:
        out.append(available["Arithmetic"]())
    if p.task == "puzzle24" and "Game24" in available:
        out.append(available["Game24"](p.entry["metadata"]["numbers"]))
    return out


def governors_for(cap: int, then: str = "stop") -> list[Governor]:
    return [TokenBudget(max_total=cap, force_answer=FORCE), LoopGuard(force_answer=FORCE, then=then),
            EntropyStop(threshold=0.3, window=24, min_tokens=24, force_answer=FORCE),
            AnswerConvergence(k=3, pattern=STATED)]


def row(config: str, p: Problem, r: RunResult, seconds: float) -> dict[str, Any]:
    answer = extract_answer(p.task, r.text)
    score = float(p.dataset.score_answer(answer, p.entry)) if answer is not None else 0.0
    rollbacks = sum(1 for i in r.interventions if i.applied and i.action is Action.ROLLBACK)
    ended_early = r.stop_reason in _STOPPED  # a governor or a verifier ended the run
    hit_cap = r.stop_reason is StopReason.BUDGET
    return {"config": config, "task": p.task, "index": p.index, "correct": score >= 1.0, "answer": answer,
            "expected": p.entry["answer"], "kept": r.tokens.kept, "total": r.tokens.total,
            "discarded": r.tokens.discarded, "fork": r.tokens.fork, "rollbacks": rollbacks,
            "interventions": rollbacks + int(ended_early),
            "hit_cap": hit_cap, "looping_at_cap": hit_cap and looping(r.text), "looping": looping(r.text),
            "stop_reason": r.stop_reason.value, "detail": r.detail, "seconds": round(seconds, 2),
            "restarts": len(r.restarts), "restart_states": [x.state for x in r.restarts],
            "text": r.text}


async def run_config(config: str, generator: Any, problems: Sequence[Problem], available: dict[str, Any],
                     cap: int, pool_per_run: int, progress: bool, max_restarts: int = 2) -> list[dict[str, Any]]:
    rows = []
    pool = None
    if config == "pool":
        pool = BudgetPool(total=pool_per_run * len(problems), max_share=2 * cap, reserve=0.25, force_answer=FORCE)
        pool.plan([p.question for p in problems])
    for p in problems:
        if config == "fixed":
            monitor = Monitor(generator, governors=[TokenBudget(max_kept=cap)])
        elif config == "verifiers":
            monitor = Monitor(generator, make_verifiers(p, available),
                              governors=[TokenBudget(max_kept=cap, max_total=2 * cap)])
        else:
            governors = governors_for(cap, then="restart" if config == "restart" else "stop")
            if pool is not None:
                governors = [pool.governor_for(p.question), *governors[1:]]
            monitor = Monitor(generator, make_verifiers(p, available), governors=governors,
                              max_restarts=max_restarts)
        start = time.perf_counter()
        saved = 0
        if config == "restart":  # restarts happen in Monitor.run (a stream is one attempt)
            result = await monitor.run(p.question)
        else:
            async with monitor.stream(p.question) as run:
                async for event in run:
                    if isinstance(event, GovernorDecided) and event.tokens_saved:
                        saved += event.tokens_saved
            result = run.result
        rows.append({**row(config, p, result, time.perf_counter() - start), "tokens_saved": saved})
        if progress:
            r = rows[-1]
            print(f"[{config}] {p.task}#{p.index}: {'right' if r['correct'] else 'wrong'} ({r['answer']} vs "
                  f"{r['expected']}), {r['kept']}/{r['total']} tokens, {r['stop_reason']} {r['detail'][:80]!r}, "
                  f"{r['seconds']} s",
                  file=sys.stderr, flush=True)
    return rows


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    return {"runs": n, "correct": sum(r["correct"] for r in rows),
            "accuracy": round(sum(r["correct"] for r in rows) / n, 3) if n else 0.0,
            "mean_kept": round(sum(r["kept"] for r in rows) / n, 1) if n else 0.0,
            "mean_total": round(sum(r["total"] for r in rows) / n, 1) if n else 0.0,
            "interventions": sum(r["interventions"] for r in rows),
            "tokens_saved": sum(r["tokens_saved"] for r in rows),
            "rollbacks": sum(r["rollbacks"] for r in rows),
            "hit_cap": sum(r["hit_cap"] for r in rows),
            "looping_at_cap": sum(r["looping_at_cap"] for r in rows),
            "looping_at_end": sum(r["looping"] for r in rows),
            "restarts": sum(r["restarts"] for r in rows),
            "seconds": round(sum(r["seconds"] for r in rows), 1)}


def table(summary: dict[str, dict[str, Any]]) -> str:
    lines = ["| configuration | right | mean kept tokens | mean total tokens | interventions | hit the cap "
             "| of those looping | looping at the end | restarts | tokens saved (governors' estimate) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for config, s in summary.items():
        lines.append(f"| {config} | {s['correct']}/{s['runs']} | {s['mean_kept']} | {s['mean_total']} | "
                     f"{s['interventions']} | {s['hit_cap']} | {s['looping_at_cap']} | {s['looping_at_end']} | "
                     f"{s['restarts']} | {s['tokens_saved']} |")
    return "\n".join(lines)


def available_verifiers() -> dict[str, Any]:
    from interlock import verifiers

    found = {}
    for name in ("Arithmetic", "Game24"):
        try:
            found[name] = getattr(verifiers, name)
        except (AttributeError, ImportError):
            print(f"note: verifiers.{name} is not available; running without it", file=sys.stderr)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a transformers folder or a .gguf file (default: the embedded SmolLM2)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--arithmetic", type=int, default=8, help="basic_arithmetic problems")
    parser.add_argument("--gsm", type=int, default=8, help="gsm_symbolic problems")
    parser.add_argument("--game24", type=int, default=4, help="puzzle24 problems")
    parser.add_argument("--limit", type=int, help="at most this many problems per task (a quick run)")
    parser.add_argument("--cap", type=int, default=256, help="the fixed cap of new tokens")
    parser.add_argument("--pool-per-run", type=int, default=112, help="pool tokens per problem (pool config)")
    parser.add_argument("--max-restarts", type=int, default=2, help="restarts allowed per run (restart config)")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated, from {','.join(CONFIGS)}")
    parser.add_argument("--json", dest="json_path", help="also write the JSON (with every run's text) here")
    parser.add_argument("--quiet", action="store_true", help="no per-run progress on stderr")
    parser.add_argument("--no-cache", action="store_true",
                        help="generate every token (default: replay greedy continuations computed before)")
    parser.add_argument("--replay-delay", type=float, default=0.02,
                        help="seconds per replayed token (checks need time between tokens; default 0.02)")
    args = parser.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration {unknown[0]!r}; choose from {', '.join(CONFIGS)}")
    counts = {"basic_arithmetic": args.arithmetic, "gsm_symbolic": args.gsm, "puzzle24": args.game24}
    if args.limit is not None:
        counts = {k: min(v, args.limit) for k, v in counts.items()}
    problems = load_problems(counts, args.seed)

    from interlock.generators import Transformers

    start = time.perf_counter()
    model = (Transformers(args.model, temperature=0.0, max_new_tokens=2 * args.cap) if args.model
             else Transformers.default(temperature=0.0, max_new_tokens=2 * args.cap))
    load_seconds = time.perf_counter() - start
    generator: Any = model if args.no_cache else GreedyCache(model, args.replay_delay)
    available = available_verifiers()

    rows: list[dict[str, Any]] = []
    done: list[str] = []
    generated: dict[str, int] = {}
    for config in configs:
        before = generator.misses if isinstance(generator, GreedyCache) else None
        rows.extend(anyio.run(run_config, config, generator, problems, available, args.cap, args.pool_per_run,
                              not args.quiet, args.max_restarts))
        if before is not None:
            generated[config] = generator.misses - before
        done.append(config)
        summary = {c: summarise([r for r in rows if r["config"] == c]) for c in done}
        out = {"model": args.model or "SmolLM2-135M-Instruct (embedded GGUF)", "greedy": True, "seed": args.seed,
               "cap": args.cap, "problems": counts, "verifiers": sorted(available),
               "load_seconds": round(load_seconds, 1), "summary": summary,
               "cache": ({"replayed_tokens": generator.hits, "generated_tokens": generator.misses,
                          "generated_by_config": generated} if isinstance(generator, GreedyCache) else None),
               "by_task": {c: {t: summarise([r for r in rows if r["config"] == c and r["task"] == t])
                               for t in counts if counts[t] > 0} for c in done},
               "runs": [{k: v for k, v in r.items() if k != "text"} for r in rows]}
        if args.json_path:  # after every configuration, so a long run interrupted keeps what it measured
            with open(args.json_path, "w", encoding="utf-8") as f:
                json.dump({**out, "runs": rows}, f, indent=1)
    print(json.dumps(out, indent=1))
    print()
    print(table(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
