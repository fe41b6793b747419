"""Run the arithmetic verifier offline over GSM8K reference solutions and GPT-3 model solutions; print JSON.

    python benchmarks/gsm8k_arithmetic.py [--data ../shared/data/gsm8k] [--sample 40] [--seed 0]

Each solution is cut into steps exactly as the monitor cuts a streamed trace (``interlock.monitor.steps``), and each
step is judged with ``interlock.verifiers.arithmetic.check_text`` (the path ``Arithmetic.check`` takes, without an event
loop). ``--scan-check N`` also runs ``Arithmetic().scan`` on the first N model solutions and reports whether
both paths agree. Reported: flags on the 1,319 reference solutions (each listed), flags on the 5,276 model
solutions and how they relate to ``is_correct``, and a seeded random sample of flags for a hand check.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from interlock.monitor.steps import step_ends  # noqa: E402
from interlock.verifiers.arithmetic import Arithmetic, check_text, wrong_claims  # noqa: E402

# Whether check_text reads the text before a step (as Arithmetic.check does); older versions did not.
TAKES_BEFORE = "before" in __import__("inspect").signature(check_text).parameters
MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def steps(text: str) -> list[tuple[int, str]]:
    """(offset, text) of each step, as the monitor's step boundaries cut it (the rest is the final step)."""
    out: list[tuple[int, str]] = []
    start = 0
    for end in step_ends(text, 0):
        out.append((start, text[start:end]))
        start = end
    if start < len(text):
        out.append((start, text[start:]))
    return out


def judge_solution(text: str) -> dict[str, Any]:
    flags: list[dict[str, Any]] = []
    checked = unknown = 0
    for offset, step in steps(text):
        findings = check_text(step, before=text[:offset]) if TAKES_BEFORE else check_text(step)
        unknown += sum(f.status == "unknown" for f in findings)
        checked += sum(f.status != "unknown" for f in findings)
        for f in wrong_claims(findings):
            flags.append({"span": [offset + f.start, offset + f.end], "text": step[f.start:f.end],
                          "feedback": f.judgement.feedback, "claim": f.claim.normalised})
    return {"checked": checked, "unknown": unknown, "flags": flags}


def ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "gsm8k")
    parser.add_argument("--sample", type=int, default=40, help="flags drawn at random for a hand check")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scan-check", type=int, default=200, help="model solutions also run through scan()")
    args = parser.parse_args()
    started = time.perf_counter()

    reference = [json.loads(line) for line in (args.data / "test.jsonl").open(encoding="utf-8")]
    ref_flags: list[dict[str, Any]] = []
    ref_checked = ref_unknown = 0
    for i, row in enumerate(reference):
        r = judge_solution(row["answer"])
        ref_checked += r["checked"]
        ref_unknown += r["unknown"]
        ref_flags += [{"index": i, **f} for f in r["flags"]]

    rows = [json.loads(line) for line in (args.data / "example_model_solutions.jsonl").open(encoding="utf-8")]
    counts = {True: [0, 0], False: [0, 0]}  # is_correct -> [solutions, flagged solutions]
    per_model: dict[str, dict[str, int]] = {}
    model_flags: list[dict[str, Any]] = []
    checked = unknown = n = 0
    scan_pairs: list[tuple[str, int]] = []
    for i, row in enumerate(rows):
        for model in MODELS:
            sol = row[model]
            n += 1
            r = judge_solution(sol["solution"])
            checked += r["checked"]
            unknown += r["unknown"]
            ok = bool(sol["is_correct"])
            counts[ok][0] += 1
            m = per_model.setdefault(model, {"solutions": 0, "flagged": 0, "flagged_incorrect": 0})
            m["solutions"] += 1
            if r["flags"]:
                counts[ok][1] += 1
                m["flagged"] += 1
                m["flagged_incorrect"] += int(not ok)
            model_flags += [{"index": i, "model": model, "is_correct": ok, **f} for f in r["flags"]]
            if len(scan_pairs) < args.scan_check:
                scan_pairs.append((sol["solution"], len(r["flags"])))

    # The offline path must agree with the verifier as the monitor runs it.
    verifier = Arithmetic(report_unknown=False)
    disagreements = sum(
        sum(v.kind == "fail" for v in verifier.scan(text)) != expected for text, expected in scan_pairs)

    flagged_solutions = counts[True][1] + counts[False][1]
    rng = random.Random(args.seed)
    sample = rng.sample(model_flags, min(args.sample, len(model_flags))) if args.sample >= 0 else model_flags
    report = {
        "reference_solutions": {
            "solutions": len(reference), "claims_checked": ref_checked, "claims_unknown": ref_unknown,
            "flags": len(ref_flags), "flagged": ref_flags,
        },
        "model_solutions": {
            "solutions": n, "claims_checked": checked, "claims_unknown": unknown, "flags": len(model_flags),
            "flagged_solutions": flagged_solutions,
            "correct": {"solutions": counts[True][0], "flagged": counts[True][1],
                        "flag_rate": ratio(counts[True][1], counts[True][0])},
            "incorrect": {"solutions": counts[False][0], "flagged": counts[False][1],
                          "flag_rate": ratio(counts[False][1], counts[False][0])},
            "precision_flagged_implies_incorrect": ratio(counts[False][1], flagged_solutions),
            "per_model": per_model,
        },
        "scan_agreement": {"solutions": len(scan_pairs), "disagreements": disagreements},
        "sample_seed": args.seed,
        "sample": sample,
        "seconds": round(time.perf_counter() - started, 2),
    }
    json.dump(report, sys.stdout, indent=1, ensure_ascii=False)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
