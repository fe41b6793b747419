"""BudgetPool: a batch of prompts shares one token budget, split by how hard each problem looks.

A fixed per-run cap spends as much on an easy sum as on a long word problem. The pool gives every run a
*share* in proportion to a difficulty estimate (from the prompt, see :func:`estimate_difficulty`), keeps a
reserve, takes back what a run did not use when it ends, and lets a run whose share runs out *draw* more,
in steps that grow with the run's updated difficulty (high entropy and verifier interventions make a run look
harder). With ``learn=True`` the difficulty also follows what the run shows so far, since a prompt's length says
little about a reasoning model's trace: answer probes that disagree (an :class:`~.answer_probe.AnswerProbe` linked
with ``governor_for(prompt, probe=...)``) and a text that turns back on itself more often than the batch's runs so
far ("Wait", "Let me double-check") make it harder; probes that agree make it easier. The sum of the tokens all
runs spend (kept + discarded + fork) never exceeds ``total``, and a draw never takes the share promised to a
prompt of the batch that has not started yet.

::

    pool = BudgetPool(total=4096)
    results = await pool.run_batch(generator, prompts, verifiers=[...], governors=[LoopGuard()])

    # or by hand, one governor per run (concurrent runs are fine):
    pool.plan(prompts)
    result = await Monitor(generator, governors=[pool.governor_for(prompt)]).run(prompt)
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError
from interlock.monitor.governor import ForceAnswer, Governor, GovernorDecision, RunContext, force_answer_option
from interlock.monitor.governors.probe_boundaries import LOOKBACK, ProbeBoundaries
from interlock.monitor.result import Intervention, RunResult, StopReason
from interlock.monitor.verdicts import Action

if TYPE_CHECKING:
    from interlock.monitor.generation import Generator
    from interlock.monitor.governors.answer_probe import AnswerProbe
    from interlock.monitor.verifier import Verifier

__all__ = ["BudgetPool", "PoolShare", "estimate_difficulty", "probe_disagreement"]

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_OPERATION = re.compile(r"[+\-*/×÷^%]|\b(?:each|per|times|twice|half|percent|total|remaining|left|more|less|"
                        r"fewer|every|average|ratio|rest)\b", re.IGNORECASE)


def estimate_difficulty(prompt: str) -> float:
    """A prior from the prompt alone, about 1 for a short sum: more words, numbers and operations mean more steps.

    It only has to rank problems roughly; the pool corrects it from each run's own signals.
    """
    words = len(prompt.split())
    numbers = len(_NUMBER.findall(prompt))
    operations = len(_OPERATION.findall(prompt))
    return 0.5 + 0.25 * numbers + 0.15 * operations + words / 60


@dataclass
class _Signals:
    entropy_sum: float = 0.0
    entropy_n: int = 0
    turns: int = 0  # "Wait"-like turns in the text (learn=True)
    tokens: int = 0
    scanned: int = 0
    last_turn: int = -1


_TURNS = ProbeBoundaries(("wait",))


def probe_disagreement(answers: Sequence[str | None], same: Callable[[str, str], bool]) -> float | None:
    """The share of consecutive probe answers that changed (a missing answer counts as a change); ``None`` with
    fewer than two probes."""
    if len(answers) < 2:
        return None
    changes = sum(a is None or b is None or not same(a, b) for a, b in itertools.pairwise(answers))
    return changes / (len(answers) - 1)


class PoolShare(Governor):
    """The governor of one run in a :class:`BudgetPool`: its allowance is its share minus what it spent.

    Made by :meth:`BudgetPool.governor_for`; one instance serves one run.
    """

    name = "budget_pool"

    def __init__(self, pool: BudgetPool, prompt: str, prior: float, share: int,
                 probe: AnswerProbe | None = None) -> None:
        self.pool = pool
        self.probe = probe
        self.prompt = prompt
        self.prior = prior
        self.share = share  # tokens granted so far (base share + draws)
        self.base = share
        self.spent = 0
        self.drawn = 0
        self.returned = 0
        self.rollbacks = 0
        self.finished = False
        self._signals = _Signals()
        self._run_id: str | None = None
        self.learned_factor = 1.0  # what the run has shown so far (learn=True), updated before each chunk

    @property
    def difficulty(self) -> float:
        """The prior, scaled by the run's own signals: mean entropy relative to the pool's reference (when the
        backend reports it) and the rollbacks the verifiers caused; with ``learn``, also the probes'
        disagreement and the rate of turns in the text (see :meth:`learned`)."""
        factor = 1.0
        s = self._signals
        if s.entropy_n:
            factor *= min(2.0, max(0.5, (s.entropy_sum / s.entropy_n) / self.pool.reference_entropy))
        if self.pool.learn:
            factor *= self.learned_factor
        return self.prior * factor * (1.0 + 0.5 * self.rollbacks)

    @property
    def turn_rate(self) -> float | None:
        """Turns ("Wait", "Let me double-check") per 100 tokens of this run so far (``learn`` only)."""
        s = self._signals
        return 100 * s.turns / s.tokens if s.tokens >= 100 else None

    def learned(self) -> float:
        """What the run shows so far, as a factor of its difficulty: probes that all agree 0.5, that always change
        2.0 (with a linked probe and two of its answers); the rate of turns relative to the batch's runs so far,
        bounded to [0.5, 2]."""
        factor = 1.0
        if self.probe is not None and self._run_id is not None:
            probes = self.probe.probes(self._run_id)
            rate = probe_disagreement([p.answer for p in probes], self.probe.same)
            if rate is not None:
                factor *= 0.5 + 1.5 * rate
        mine, batch = self.turn_rate, self.pool.mean_turn_rate
        if mine is not None and batch:
            factor *= min(2.0, max(0.5, mine / batch))
        return factor

    def start(self, ctx: RunContext) -> None:
        if self._run_id is not None and self._run_id != ctx.run_id:
            raise ConfigError("a PoolShare serves one run: ask the pool for a governor per run (governor_for)")
        self._run_id = ctx.run_id

    def token_allowance(self, ctx: RunContext) -> int | None:
        self.spent = ctx.tokens.total
        if self.pool.learn:
            self.learned_factor = self.learned()
        held = 0 if ctx.forcing_answer else self.pool.reserve_for_answer
        left = self.share - self.spent - held
        if left < self.pool.low_water and not ctx.forcing_answer:
            left += self.pool._draw(self, want=self.pool.draw_tokens(self))
        return max(0, left)

    def on_chunk(self, ctx: RunContext, chunk: Chunk) -> GovernorDecision | None:
        values = chunk.entropy if chunk.entropy is not None else (
            tuple(-lp for lp in chunk.logprobs) if chunk.logprobs is not None else None)
        s = self._signals
        if values:
            s.entropy_sum += sum(values)
            s.entropy_n += len(values)
        if self.pool.learn:
            text = ctx.text
            s.scanned = min(s.scanned, len(text))
            for at in _TURNS.find(text, max(0, s.scanned - LOOKBACK)):
                if at > s.last_turn:
                    s.turns += 1
                    s.last_turn = at
            s.scanned = len(text)
            s.tokens = ctx.tokens.kept
        return None

    def on_intervention(self, ctx: RunContext, proposal: Intervention) -> GovernorDecision | None:
        if proposal.action is Action.ROLLBACK:
            self.rollbacks += 1
        return None

    def on_exhausted(self, ctx: RunContext) -> GovernorDecision | None:
        limit = self.pool.max_share if self.pool.max_share is not None else self.pool.total
        reason = (f"pool share of {self.share} tokens spent and nothing more to draw "
                  f"({self.pool.free} free in the pool, max_share {limit})")
        if self.pool.force_answer is not None:
            return self.pool.force_answer.decision(reason, stop_reason=StopReason.BUDGET, tokens_saved=0)
        return None

    def on_end(self, ctx: RunContext) -> None:
        self.spent = ctx.tokens.total
        self.pool._release(self)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prior": round(self.prior, 3), "difficulty": round(self.difficulty, 3),
                               "base": self.base,
               "share": self.share, "spent": self.spent, "drawn": self.drawn, "returned": self.returned}
        if self.pool.learn:
            out["learned"] = round(self.learned_factor, 3)
        return out


class BudgetPool:
    """A total token budget shared by a batch of runs; see the module docstring.

    - ``total``: the most tokens all runs together may spend.
    - ``reserve``: the fraction of ``total`` not handed out as base shares, kept for draws.
    - ``min_share``/``max_share``: bounds of one run's share (``max_share`` also bounds draws).
    - ``draw``: tokens of one draw for a run of average difficulty (scaled by the run's difficulty).
    - ``force_answer``: when a share is spent and nothing can be drawn, make the run answer (default) within
      its share (the answer's tokens are held back from it), or stop plainly.
    - ``estimate``: the prompt -> difficulty prior; ``reference_entropy``: the mean per-token entropy (nats)
      of a run of average difficulty, for the update from signals.
    - ``learn``: scale each run's difficulty by what it shows so far (:meth:`PoolShare.learned`: its linked
      probes' disagreement, its rate of turns against the batch's).
    """

    def __init__(self, total: int, *, runs: int | None = None, reserve: float = 0.2, min_share: int = 48,
                 max_share: int | None = None, draw: int = 48, force_answer: ForceAnswer | bool = True,
                 estimate: Callable[[str], float] = estimate_difficulty, reference_entropy: float = 1.0,
                 learn: bool = False) -> None:
        if total < 1:
            raise ConfigError(f"BudgetPool: total must be >= 1 token, got {total}")
        if runs is not None and runs < 1:
            raise ConfigError(f"BudgetPool: runs must be >= 1, got {runs}")
        if not 0 <= reserve < 1:
            raise ConfigError(f"BudgetPool: reserve must be a fraction in [0, 1), got {reserve}")
        if max_share is not None and max_share < min_share:
            raise ConfigError(f"BudgetPool: max_share={max_share} is below min_share={min_share}")
        if draw < 1 or reference_entropy <= 0:
            raise ConfigError("BudgetPool: draw must be >= 1 token and reference_entropy > 0")
        self.total = total
        self.runs = runs
        self.reserve = reserve
        self.min_share = min_share
        self.max_share = max_share
        self.draw = draw
        self.force_answer = force_answer_option(force_answer)
        if self.force_answer is not None and self.force_answer.tokens >= min_share:
            raise ConfigError(f"BudgetPool: min_share={min_share} must exceed the forced answer's "
                              f"{self.force_answer.tokens} tokens")
        self.estimate = estimate
        self.reference_entropy = reference_entropy
        self.learn = bool(learn)
        self.low_water = 4  # draw before a share is down to its last few tokens
        self._lock = threading.Lock()
        self._free = total  # tokens held by no share
        self._planned: list[tuple[str, float, int]] = []  # (prompt, prior, promised base share), not started
        self._priors: list[float] = []
        self.shares: list[PoolShare] = []

    @property
    def reserve_for_answer(self) -> int:
        return self.force_answer.tokens if self.force_answer is not None else 0

    @property
    def free(self) -> int:
        """Tokens no share holds (returned ones included)."""
        return self._free

    @property
    def spent(self) -> int:
        return sum(s.spent for s in self.shares)

    def _clamp(self, share: float) -> int:
        high = self.max_share if self.max_share is not None else self.total
        return int(min(high, max(self.min_share, share)))

    def plan(self, prompts: Sequence[str]) -> None:
        """Promise base shares to a batch: ``total * (1 - reserve)`` split in proportion to difficulty."""
        if not prompts:
            return
        priors = [self._prior(p) for p in prompts]
        base_total = self.total * (1 - self.reserve)
        weight = sum(priors)
        bases = [self._clamp(base_total * prior / weight) for prior in priors]
        with self._lock:
            promised = sum(b for _, _, b in self._planned) + sum(bases)
            if promised > self._free:
                raise ConfigError(f"BudgetPool: {len(prompts)} more runs need {promised} tokens of base shares "
                                  f"(min_share={self.min_share}) but the pool has {self._free} free")
            self._planned.extend(zip(prompts, priors, bases, strict=True))
            self._priors.extend(priors)
            self.runs = max(self.runs or 0, len(self._priors))

    def _prior(self, prompt: str) -> float:
        if not isinstance(prompt, str):
            raise ConfigError(f"BudgetPool: prompts must be strings, got {type(prompt).__name__}")
        prior = float(self.estimate(prompt))
        if not math.isfinite(prior) or prior <= 0:
            raise ConfigError(f"BudgetPool: the difficulty estimate must be a positive number, got {prior!r}")
        return prior

    @property
    def mean_turn_rate(self) -> float | None:
        """The mean rate of turns per 100 tokens of the runs that showed one (``learn``)."""
        rates = [r for s in self.shares if (r := s.turn_rate) is not None]
        return sum(rates) / len(rates) if rates else None

    def governor_for(self, prompt: str, *, probe: AnswerProbe | None = None) -> PoolShare:
        """The governor for one run of ``prompt``: its base share is taken from the pool now.

        A planned prompt gets the share promised to it; any other prompt gets ``total / runs`` scaled by its
        difficulty relative to the mean seen so far (``runs`` must then be known: give it or plan first).
        ``probe``: the run's answer probe, whose disagreement the share learns from (``learn=True``).
        """
        with self._lock:
            index = next((i for i, (p, _, _) in enumerate(self._planned) if p == prompt), None)
            if index is not None:
                _, prior, base = self._planned.pop(index)
            else:
                if self.runs is None:
                    raise ConfigError("BudgetPool.governor_for: this prompt was not planned and the pool does not "
                                      "know how many runs to expect; call pool.plan(prompts) or give runs=")
                prior = self._prior(prompt)
                self._priors.append(prior)
                mean = sum(self._priors) / len(self._priors)
                base = self._clamp(self.total * (1 - self.reserve) / self.runs * prior / mean)
            promised = sum(b for _, _, b in self._planned)
            base = max(0, min(base, self._free - promised))
            self._free -= base
            share = PoolShare(self, prompt, prior, base, probe)
            self.shares.append(share)
            return share

    def draw_tokens(self, share: PoolShare) -> int:
        """How many tokens a run asks for when its share runs low: ``draw`` scaled by its difficulty relative to
        the batch's mean prior."""
        mean = sum(self._priors) / len(self._priors) if self._priors else share.prior
        return max(1, round(self.draw * share.difficulty / mean))

    def _draw(self, share: PoolShare, want: int) -> int:
        with self._lock:
            promised = sum(b for _, _, b in self._planned)
            room = self._free - promised
            if self.max_share is not None:
                room = min(room, self.max_share - share.share)
            granted = max(0, min(want, room))
            self._free -= granted
            share.share += granted
            share.drawn += granted
            return granted

    def _release(self, share: PoolShare) -> None:
        with self._lock:
            if share.finished:
                return
            share.finished = True
            unused = max(0, share.share - share.spent)
            share.returned = unused
            share.share -= unused
            self._free += unused

    async def run_batch(self, generator: Generator, prompts: Sequence[str], *,
                        verifiers: Sequence[Verifier | str] = (), governors: Sequence[Governor] = (),
                        concurrency: int = 1, order: Literal["given", "easy_first"] = "given",
                        **monitor_options: Any) -> list[RunResult]:
        """Run every prompt under this pool and return the results in the order of ``prompts``.

        Each run gets a :class:`~monitor.Monitor` with ``verifiers``, ``governors`` (shared by the runs: they
        must keep per-run state, as the built-in ones do) and its own :class:`PoolShare`; ``monitor_options``
        go to the Monitor. ``order="easy_first"`` starts the easy prompts first, so that what they return is
        there for the hard ones. ``concurrency`` runs go at once. An :class:`~.answer_probe.AnswerProbe` among
        ``governors`` is linked to each share (its disagreement counts with ``learn=True``).
        """
        from interlock.monitor.governors.answer_probe import AnswerProbe
        from interlock.monitor.monitor import Monitor

        if concurrency < 1:
            raise ConfigError(f"run_batch: concurrency must be >= 1, got {concurrency}")
        if order not in ("given", "easy_first"):
            raise ConfigError(f"run_batch: order must be 'given' or 'easy_first', got {order!r}")
        self.plan(prompts)
        indices = list(range(len(prompts)))
        if order == "easy_first":
            indices.sort(key=lambda i: self._prior(prompts[i]))
        results: list[RunResult | None] = [None] * len(prompts)
        limiter = anyio.CapacityLimiter(concurrency)
        probe = next((g for g in governors if isinstance(g, AnswerProbe)), None)
        started = [anyio.Event() for _ in indices]  # runs take their shares in order

        async def one(n: int, i: int) -> None:
            if n:
                await started[n - 1].wait()
            async with limiter:
                share = self.governor_for(prompts[i], probe=probe)
                started[n].set()
                monitor = Monitor(generator, verifiers, [*governors, share], **monitor_options)
                results[i] = await monitor.run(prompts[i])

        async with anyio.create_task_group() as tg:
            for n, i in enumerate(indices):
                tg.start_soon(one, n, i)
        return [r for r in results if r is not None]

    def stats(self) -> dict[str, Any]:
        """Totals and per-run figures: what was planned, drawn, returned and spent."""
        return {"total": self.total, "free": self._free, "spent": self.spent,
                "drawn": sum(s.drawn for s in self.shares), "returned": sum(s.returned for s in self.shares),
                "runs": [s.to_dict() for s in self.shares]}
