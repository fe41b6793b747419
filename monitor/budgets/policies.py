"""Budget policies to evaluate: named sets of governors, written as short specs for the command line.

A spec is governors joined by ``+``; each is ``kind[:arg][:key=value...]``:

- ``cap:N``: :class:`TokenBudget` ``max_total=N`` (``cap:N:force`` forces an answer, reserving its tokens).
  ``cap:512,1024,2048`` is a sweep: one policy per value (so is ``pool:...``).
- ``pool:N``: :class:`BudgetPool` over the whole batch with ``N`` tokens per trace on average (``total = N * traces``),
  its difficulty prior from the question; it forces the answer when a share is spent, as by default.
- ``loop[:lines=3][:repeats=3][:chars=30]``: :class:`LoopGuard` that stops at the first repetition (offline there
  is no rollback to nudge after): the same line ``lines`` times anywhere (``lines=0``: that test off), or the trace
  ending in a run of words written ``repeats`` times in a row covering ``chars`` characters.
- ``converge[:k=2][:read=boxed|number]``: :class:`AnswerConvergence`, the answer read from ``\\boxed{}`` or from
  "answer is N" text.
- ``entropy[:threshold=0.3][:window=24]``: :class:`EntropyStop` (only traces with logprobs: interlock trace files).
- ``boxed:N``: :class:`RepeatedBoxed` (``boxed:2`` is the crude "second identical \\boxed{}" rule).
- ``think:N[:lost|:recorded]``: :class:`~interlock.monitor.budgets.phased.ThinkingCap`, a cap of N tokens on the
  thinking alone (``think:512,1024`` is a sweep): the thinking is ended there and the model answers; offline, that
  answer is scored as the last answer the kept thinking states (``lost``: scored wrong, a lower bound; ``recorded``:
  as the whole recorded trace, an upper bound). See :mod:`~.phased`.
- ``none``: no governor (the uncapped trace).
- ``probe[:k=3][:at=wait/paragraph][:every=N][:conf=P][:eat=V]...``, ``deer[:conf=0.95]``, ``eat[:eat=0.01]``:
  :class:`AnswerProbe` (options as :func:`~interlock.monitor.governors.answer_probe.probe_from_spec`), its probes
  answered by a probe model or a probe cache (:mod:`interlock.monitor.budgets.probes`); ``probe:k=2,3,4`` is a
  sweep of its first option. ``pool:N:learn``: the pool's shares learn from the run's probes and text.

A :class:`Policy` may also be built from any picklable factory of governors (the Python API).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from interlock.monitor.budgets.errors import BudgetError
from interlock.monitor.budgets.phased import ThinkingCap
from interlock.monitor.budgets.rules import BOXED_PATTERN, RepeatedBoxed, normalise_latex
from interlock.monitor.governor import Governor
from interlock.monitor.governors import AnswerConvergence, EntropyStop, LoopGuard, TokenBudget
from interlock.monitor.governors.answer_probe import PROBE_KINDS, PROBE_OPTIONS, probe_from_spec
from interlock.monitor.governors.early_stop import DEFAULT_ANSWER_PATTERN, normalise_answer

__all__ = ["DEFAULT_POLICIES", "Policy", "build_governors", "parse_policies"]

# (no ``entropy``: it needs recorded logprobs, which text traces never have; ask for it on trace files with -p)
DEFAULT_POLICIES = ("cap:1024,2048,4096", "pool:2048", "loop", "loop:lines=0:repeats=4", "converge",
                    "boxed:2", "boxed:1", "loop:lines=0:repeats=4+boxed:2",
                    "loop:lines=0:repeats=4+converge+cap:4096")

_NEVER = 1 << 30  # a line-repeat count no trace reaches: the repeated-line test is off
_KINDS = ("cap", "pool", "loop", "converge", "entropy", "boxed", "think", "none", *PROBE_KINDS)
_SWEEPS = ("cap", "pool", "think")


@dataclass(frozen=True)
class Policy:
    """A name and how to make its governors for one trace (fresh ones per trace: they keep per-run state).

    ``pool_tokens``: this policy also draws from a :class:`BudgetPool` of that many tokens per trace shared by
    the batch (it cannot be evaluated one record at a time); ``pool_learn``: that pool learns each run's difficulty
    from what it shows (``BudgetPool(learn=True)``).
    """

    name: str
    factory: Callable[[], Sequence[Governor]]
    pool_tokens: int | None = None
    pool_learn: bool = False

    def governors(self) -> list[Governor]:
        made = list(self.factory())
        for g in made:
            if not isinstance(g, Governor):
                raise BudgetError(f"policy {self.name!r}: {g!r} is not a Governor")
        return made

    @classmethod
    def of(cls, spec: str) -> Policy:
        """One policy from a spec without a sweep (``loop+cap:1024``)."""
        policies = parse_policies([spec])
        if len(policies) != 1:
            raise BudgetError(f"{spec!r} is a sweep of {len(policies)} policies; use parse_policies")
        return policies[0]


def _options(kind: str, items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            if (item, kind) in (("force", "cap"), ("learn", "pool"), ("lost", "think"), ("recorded", "think")):
                out[item] = "1"
                continue
            raise BudgetError(f"policy part {kind!r}: option {item!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def _number(kind: str, value: str, cast: Callable[[str], Any] = int) -> Any:
    try:
        return cast(value)
    except ValueError:
        raise BudgetError(f"policy part {kind!r}: {value!r} is not a number") from None


def _one(kind: str, arg: str | None, opts: dict[str, str]) -> Governor | None:
    allowed = {"cap": {"force"}, "converge": {"k", "read"}, "entropy": {"threshold", "window"},
               "loop": {"lines", "repeats", "chars"}, "pool": {"learn"}, "think": {"lost", "recorded"},
               **{kind: set(PROBE_OPTIONS) for kind in PROBE_KINDS}}.get(kind, set())
    unknown = set(opts) - allowed
    if unknown:
        raise BudgetError(f"policy part {kind!r} takes no option {sorted(unknown)[0]!r}"
                          + (f" (options: {', '.join(sorted(allowed))})" if allowed else ""))
    if kind == "cap":
        if arg is None:
            raise BudgetError("cap needs a token count: cap:1024")
        return TokenBudget(max_total=_number(kind, arg), force_answer="force" in opts)
    if kind == "loop":
        lines = _number(kind, opts.get("lines", "3"))
        return LoopGuard(nudge=None, force_answer=False, min_repeats=_number(kind, opts.get("repeats", "3")),
                         min_chars=_number(kind, opts.get("chars", "30")),
                         max_line_repeats=lines if lines else _NEVER)
    if kind == "converge":
        read = opts.get("read", "boxed")
        if read not in ("boxed", "number"):
            raise BudgetError(f"converge: read must be boxed or number, got {read!r}")
        k = _number(kind, opts.get("k", "2"))
        if read == "boxed":
            return AnswerConvergence(k, pattern=BOXED_PATTERN, normalise=normalise_latex)
        return AnswerConvergence(k, pattern=DEFAULT_ANSWER_PATTERN, normalise=normalise_answer)
    if kind == "entropy":
        return EntropyStop(_number(kind, opts.get("threshold", "0.3"), float), _number(kind, opts.get("window", "24")),
                           force_answer=False)
    if kind == "boxed":
        return RepeatedBoxed(_number(kind, arg or "2"))
    if kind == "think":
        if arg is None:
            raise BudgetError("think needs a number of thinking tokens: think:1024")
        if "lost" in opts and "recorded" in opts:
            raise BudgetError("think: a cut thinking is scored lost or recorded, not both")
        return ThinkingCap(_number(kind, arg), scoring=next((s for s in ("lost", "recorded") if s in opts), "stated"))
    if kind in PROBE_KINDS:
        return probe_from_spec(":".join(f"{k}={v}" for k, v in opts.items()), kind)
    return None  # none, pool (the pool's share is added per trace by the evaluator)


def build_governors(spec: str) -> list[Governor]:
    """The governors of one spec without a sweep, fresh (``pool`` parts excluded: see :class:`Policy`)."""
    made = []
    for part in spec.split("+"):
        kind, *rest = part.strip().split(":")
        arg = rest[0] if rest and "=" not in rest[0] and rest[0] not in ("force", "lost", "recorded") else None
        opts = _options(kind, rest[1:] if arg is not None else rest)
        g = _one(kind, arg, opts)
        if g is not None:
            made.append(g)
    return made


def _expand(spec: str) -> list[tuple[str, int | None, bool]]:
    """Sweeps expanded: ``loop+cap:512,1024`` -> [("loop+cap:512", None), ("loop+cap:1024", None)]; with the
    pool's tokens per trace when a part is ``pool:N``."""
    parts = [p.strip() for p in spec.split("+")]
    if not spec.strip() or any(not p for p in parts):
        raise BudgetError(f"empty policy part in {spec!r}")
    variants: list[list[str]] = [[]]
    for part in parts:
        kind, *rest = part.split(":")
        if kind not in _KINDS:
            raise BudgetError(f"unknown policy part {kind!r} in {spec!r}; expected one of: {', '.join(_KINDS)}")
        values = rest[0].split(",") if rest and "," in rest[0] else None
        if values is not None and kind in PROBE_KINDS and "=" in rest[0]:  # probe:k=2,3: a sweep of one option
            key, _, swept = rest[0].partition("=")
            values = [f"{key}={v.strip()}" for v in swept.split(",")]
        elif values is not None and kind not in _SWEEPS:
            raise BudgetError(f"only cap and pool (and think) take a sweep of values (a probe: of its first option), "
                              f"not {kind!r}")
        options = [part] if values is None else [":".join([kind, v.strip(), *rest[1:]]) for v in values]
        variants = [[*v, o] for v in variants for o in options]
    out = []
    for v in variants:
        pools = [p for p in v if p.split(":")[0] == "pool"]
        if len(pools) > 1:
            raise BudgetError(f"{spec!r}: one pool per policy")
        tokens = None
        learn = False
        if pools:
            pieces = pools[0].split(":")
            learn = pieces[2:] == ["learn"]
            if len(pieces) != 2 and not learn:
                raise BudgetError("pool needs the tokens per trace, and takes one option, learn: pool:1024[:learn]")
            tokens = _number("pool", pieces[1])
            if tokens < 1:
                raise BudgetError(f"pool: tokens per trace must be >= 1, got {tokens}")
        out.append(("+".join(v), tokens, learn))
    return out


def parse_policies(specs: Iterable[str]) -> list[Policy]:
    """Policies from specs (sweeps expanded), each checked by building its governors once."""
    policies: list[Policy] = []
    for spec in specs:
        for name, pool, learn in _expand(spec):
            try:
                build_governors(name)
            except BudgetError:
                raise
            except Exception as exc:  # a governor rejected its configuration (ConfigError)
                raise BudgetError(f"policy {name!r}: {exc}") from None
            policies.append(Policy(name, functools.partial(build_governors, name), pool, learn))
    names = [p.name for p in policies]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise BudgetError(f"policy {duplicate!r} is given twice")
    return policies
