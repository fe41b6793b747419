"""First-error recall of the arithmetic verifier on a labelled corpus of multi-step arithmetic; prints JSON.

    python benchmarks/arithmetic_recall.py [--problems 400] [--seed 0]

The problems are reasoning-gym's ``basic_arithmetic`` and ``chain_sum`` (offline, seeded). This script solves each
one step by step, one operation a step (``(56 + -33) - 84 = 23 - 84 = -61``), and writes the solution in one of
several notations models use: a plain chain, one sentence a step with words around, LaTeX displays continued
over lines, an ``align`` environment, reversed claims (``23 = 56 + -33``), markdown bold and bullets, results
after "which is", operators in words. Each problem is written twice: correct, and with ONE wrong link at a
random step (the value of that step off by a random amount, the later steps computed right from it, as a model's
slip propagates). The solutions are cut into steps as the monitor cuts them and each step is judged with
``check_text``. Reported:

- ``first_error_recall``: the share of corrupted solutions whose first flag is the injected link (its span
  overlaps the wrong link's text);
- ``false_alarms``: flags on correct solutions, and flags before the injected link in corrupted ones;
- both per notation.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from interlock.monitor.steps import step_ends  # noqa: E402
from interlock.verifiers.arithmetic import check_text, wrong_claims  # noqa: E402

_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


@dataclass(frozen=True)
class Bin:
    op: str
    left: Any  # Bin | Fraction
    right: Any


def parse(expression: str) -> Any:
    """The dataset's own expression (not model text) as a tree of Fractions: + - * / and unary minus only."""
    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return Bin(_OPS[type(node.op)], walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = walk(node.operand)
            if isinstance(inner, Fraction):
                return -inner
            return Bin("-", Fraction(0), inner)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return Fraction(str(node.value))
        raise ValueError(f"not read: {ast.dump(node)}")
    return walk(ast.parse(expression.replace("÷", "/").replace("×", "*"), mode="eval").body)


def value(node: Any) -> Fraction:
    if isinstance(node, Fraction):
        return node
    a, b = value(node.left), value(node.right)
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else Fraction(10**9)}[node.op]


def reduce_once(node: Any, wrong: Fraction | None = None) -> tuple[Any, tuple[Any, Fraction] | None]:
    """The expression with its first operation (in evaluation order) done; and (that operation, its value)."""
    if isinstance(node, Fraction):
        return node, None
    if isinstance(node.left, Fraction) and isinstance(node.right, Fraction):
        v = value(node) if wrong is None else wrong
        return v, (node, v)
    if not isinstance(node.left, Fraction):
        left, done = reduce_once(node.left, wrong)
        return Bin(node.op, left, node.right), done
    right, done = reduce_once(node.right, wrong)
    return Bin(node.op, node.left, right), done


def number(v: Fraction) -> str:
    if v.denominator == 1:
        return str(v.numerator)
    return f"{v.numerator}/{v.denominator}"


class Style:
    """How one notation writes numbers and operators."""

    def __init__(self, times: str = "*", divide: str = "/", paren_negative: bool = False,
                 latex: bool = False) -> None:
        self.times, self.divide, self.paren_negative, self.latex = times, divide, paren_negative, latex

    def num(self, v: Fraction, *, operand: bool) -> str:
        text = number(v)
        if self.latex and v.denominator != 1:
            text = f"\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"
            text = f"-{text}" if v < 0 else text
        if v.denominator != 1 and operand and not self.latex:
            return f"({text})"
        if v < 0 and operand and self.paren_negative:
            return f"({text})"
        return text

    def expr(self, node: Any, parent: int = 0, right_side: bool = False) -> str:
        if isinstance(node, Fraction):
            return self.num(node, operand=True)
        p = _PREC[node.op]
        op = {"*": self.times, "/": self.divide}.get(node.op, node.op)
        text = f"{self.expr(node.left, p)} {op} {self.expr(node.right, p, True)}"
        if p < parent or (right_side and p == parent):
            return f"({text})"
        return text


PLAIN, UNICODE, LATEX = Style(), Style("×", "÷", True), Style("\\times", "\\div", True, latex=True)


def chain_texts(tree: Any, wrong_at: int | None, rng: random.Random) -> tuple[list[Any], list[tuple[Any, Fraction]]]:
    """The successive expressions of the solution and the operations done, with the step ``wrong_at`` off."""
    exprs, ops = [tree], []
    node, k = tree, 0
    while not isinstance(node, Fraction):
        wrong = None
        if k == wrong_at:
            assert isinstance(node, Bin)
            true = value(_first_op(node))
            wrong = true + rng.choice([-1, 1]) * rng.choice([1, 1, 2, 3, 5, 10, 11, 100])
        node, done = reduce_once(node, wrong)
        assert done is not None
        exprs.append(node)
        ops.append(done)
        k += 1
    return exprs, ops


def _first_op(node: Any) -> Any:
    while not (isinstance(node.left, Fraction) and isinstance(node.right, Fraction)):
        node = node.left if not isinstance(node.left, Fraction) else node.right
    return node


def render(notation: str, exprs: list[Any], ops: list[tuple[Any, Fraction]], rng: random.Random
           ) -> tuple[str, list[tuple[int, int]]]:
    """The solution in a notation, and the span of each link's text (link k: step k of the solution)."""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0

    def put(text: str, link: bool = False) -> None:
        nonlocal pos
        if link:
            spans.append((pos, pos + len(text)))
        parts.append(text)
        pos += len(text)

    if notation in {"chain", "chain_unicode", "latex_display", "align"}:
        style = {"chain": PLAIN, "chain_unicode": UNICODE}.get(notation, LATEX)
        texts = [style.expr(e) if not isinstance(e, Fraction) else style.num(e, operand=False) for e in exprs]
        if notation in {"chain", "chain_unicode"}:
            put("Let's compute step by step:\n")
            put(texts[0])
            for k in range(1, len(texts)):
                start = pos - len(texts[k - 1])
                put(f" = {texts[k]}")
                spans.append((start, pos))
            put(f"\n\nThe answer is {texts[-1]}.")
        elif notation == "latex_display":
            put("We simplify the expression:\n\\[ ")
            put(texts[0])
            prev_start = pos - len(texts[0])
            for k in range(1, len(texts)):
                put(" \\]\n\\[ = ")
                put(texts[k])
                spans.append((prev_start, pos))
                prev_start = pos - len(texts[k])
            put(" \\]\nSo the answer is $\\boxed{" + texts[-1] + "}$.")
        else:
            put("\\begin{align*}\n")
            put(texts[0])
            prev_start = pos - len(texts[0])
            for k in range(1, len(texts)):
                put(" \\\\\n&= " if k > 1 else " &= ")
                put(texts[k])
                spans.append((prev_start, pos))
                prev_start = pos - len(texts[k])
            put("\n\\end{align*}")
        return "".join(parts), spans
    style = rng.choice([PLAIN, UNICODE]) if notation != "latex_steps" else LATEX
    names = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}
    for k, (node, v) in enumerate(ops):
        a = style.num(node.left, operand=False) if notation == "words_ops" else style.expr(node.left, 2)
        b = style.num(node.right, operand=True)
        op = {"*": style.times, "/": style.divide}.get(node.op, node.op)
        res = style.num(v, operand=False)
        lead = ["First, ", "Next, ", "Then ", "Now "][min(k, 3)]
        if notation == "sentences":
            put(lead)
            put(f"{a} {op} {b} = {res}", True)
            put(".\n")
        elif notation == "words_around":
            unit = rng.choice(["apples", "miles", "cups", "square feet", "dollars", "km", "minutes"])
            put(rng.choice(["She is left with ", "That makes a total of ", "He walked ", "So we get "]))
            put(f"{a} {op} {b} = {res}", True)
            put(f" {unit}.\n")
        elif notation == "money":
            def cash(x: Fraction) -> str:
                return f"-${-x}" if x < 0 else f"${x}"
            if any(x.denominator != 1 for x in (node.left, node.right, v)):
                put(lead)
                put(f"{a} {op} {b} = {res}", True)
            else:
                put(lead + "she pays ")
                b_text = cash(node.right) if node.op in "+-" else b
                put(f"{cash(node.left)} {op} {b_text} = {cash(v)}", True)
            put(".\n")
        elif notation == "reversed":
            put("Check: ")
            put(f"{res} = {a} {op} {b}", True)
            put(".\n")
        elif notation == "which_is":
            put(lead)
            put(f"{a} {op} {b}, which is {res}", True)
            put(".\n")
        elif notation == "markdown":
            put(rng.choice(["- ", "* ", "1. "]) + "**")
            put(f"{a} {op} {b} = {res}", True)
            put("**\n")
        elif notation == "latex_steps":
            put(f"{lead}$")
            put(f"{a} {op} {b} = {res}", True)
            put("$.\n\n")
        elif notation == "words_ops":
            put(f"{lead}")
            put(f"{a} {names[node.op]} {b} is {res}", True)
            put(".\n")
        else:
            raise ValueError(notation)
    put(f"\nThe answer is {style.num(ops[-1][1], operand=False)}.")
    return "".join(parts), spans


NOTATIONS = ("chain", "chain_unicode", "latex_display", "align", "sentences", "words_around", "money", "reversed",
             "which_is", "markdown", "latex_steps", "words_ops")


def _takes_before() -> bool:
    """Whether ``check_text`` reads the text before a step (older versions do not: run them as they were)."""
    import inspect

    return "before" in inspect.signature(check_text).parameters


def flags(text: str) -> list[tuple[int, int, str]]:
    out: list[tuple[int, int, str]] = []
    before = _takes_before()
    start = 0
    cuts = [*step_ends(text, 0), len(text)]
    for end in cuts:
        if end <= start:
            continue
        step = text[start:end]
        for f in wrong_claims(check_text(step, before=text[:start]) if before else check_text(step)):
            out.append((start + f.start, start + f.end, f.judgement.feedback))
        start = end
    return out


def problems(n: int, seed: int) -> list[tuple[str, str]]:
    import reasoning_gym as rg

    out = []
    for name in ("basic_arithmetic", "chain_sum"):
        for x in rg.create_dataset(name, size=n // 2, seed=seed):
            out.append((name, x["metadata"]["expression"]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--misses", type=int, default=10, help="missed errors listed for a hand check")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.perf_counter()
    per: dict[str, dict[str, int]] = {n: {"corrupted": 0, "first_error_found": 0, "flags_on_correct": 0,
                                          "early_flags": 0, "correct": 0} for n in NOTATIONS}
    misses: list[dict[str, Any]] = []
    alarms: list[dict[str, Any]] = []
    skipped = 0
    for source, expression in problems(args.problems, args.seed):
        try:
            tree = parse(expression)
        except (ValueError, SyntaxError):
            skipped += 1
            continue
        if isinstance(tree, Fraction):
            skipped += 1
            continue
        notation = rng.choice(NOTATIONS)
        row = per[notation]
        exprs, ops = chain_texts(tree, None, rng)
        text, _ = render(notation, exprs, ops, random.Random(rng.random()))
        row["correct"] += 1
        found = flags(text)
        if found:
            row["flags_on_correct"] += 1
            alarms.append({"notation": notation, "text": text, "flags": found})
        wrong_at = rng.randrange(len(ops))
        exprs, ops = chain_texts(tree, wrong_at, rng)
        text, spans = render(notation, exprs, ops, random.Random(rng.random()))
        target = spans[wrong_at]
        row["corrupted"] += 1
        found = flags(text)
        first = found[0] if found else None
        if first is not None and first[0] < target[1] and target[0] < first[1]:
            row["first_error_found"] += 1
        else:
            if first is not None and first[1] <= target[0]:
                row["early_flags"] += 1
                alarms.append({"notation": notation, "text": text, "flags": found, "wrong_link": target})
            if len(misses) < args.misses:
                misses.append({"notation": notation, "source": source, "text": text,
                               "wrong_link": text[target[0]:target[1]], "flags": found})
    corrupted = sum(r["corrupted"] for r in per.values())
    found_first = sum(r["first_error_found"] for r in per.values())
    report = {
        "problems": corrupted, "skipped": skipped, "seed": args.seed,
        "first_error_recall": round(found_first / corrupted, 4) if corrupted else None,
        "false_alarms": {"correct_solutions_flagged": sum(r["flags_on_correct"] for r in per.values()),
                         "flags_before_the_injected_error": sum(r["early_flags"] for r in per.values()),
                         "examples": alarms[:5]},
        "per_notation": {n: {**r, "recall": round(r["first_error_found"] / r["corrupted"], 4) if r["corrupted"]
                             else None} for n, r in per.items()},
        "misses": misses,
        "seconds": round(time.perf_counter() - started, 2),
    }
    json.dump(report, sys.stdout, indent=1, ensure_ascii=False)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
