"""Answer probes offline: ask a model, once, what a recorded trace would answer at each of its turns, and keep every
answer in a cache file, so that probe policies (``probe:k=3``, ``deer``, ``eat``, another k, another threshold)
are evaluated again without a model call.

The probe policies are the live :class:`~interlock.monitor.governors.AnswerProbe`, replayed over the recorded
trace (:func:`~interlock.monitor.budgets.offline.replay_governors`) with forks answered from the cache: at each
turn the governor asks its probe (the trace up to the turn, the thinking closed, ``\\boxed{``), the cache answers
it at once, and the stop rules decide as live. What is not in the cache yet is asked of the probe model first, in
rounds (the probes a replay needs up to its first missing answers, all traces at once), so a policy that stops
early asks for no probe beyond its stop.

- :class:`ProbeCache`: a JSON Lines file, one probe a line (appended and flushed as it comes, so an interrupted
  run keeps what it asked): the trace's id and the position of the probe, the probe model and settings, the chunks
  it wrote (text, token logprobs, entropy). The key is a hash of everything the probe sends (model, settings,
  question, prefix and its phases), so the same prefix in another file is a hit and a changed trace is a miss.
- :class:`HTTPProber` asks an OpenAI-compatible server (logprobs and 5 top logprobs asked, so DEER and EAT can
  be evaluated); :class:`LocalProber` a local model (``Transformers``; probes of one trace in order, so its KV
  cache is reused from one prefix to the next).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from interlock.monitor.budgets.answers import AnswerScorer, stated_answer
from interlock.monitor.budgets.errors import BudgetError
from interlock.monitor.budgets.offline import OfflineRun, replay_governors
from interlock.monitor.budgets.policies import Policy
from interlock.monitor.budgets.records import TraceRecord
from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError
from interlock.monitor.generation import GenerationRequest
from interlock.monitor.governor import Governor
from interlock.monitor.governors import AnswerProbe, BudgetPool
from interlock.monitor.phases import ANSWER, KNOWN_TAGS, THINKING, Phase, PhaseRuns
from interlock.monitor.thinking import split_text

__all__ = ["HTTPProber", "LocalProber", "ProbeCache", "Prober", "default_cache_path", "evaluate_probe_policies",
           "probe_key", "probe_request", "uses_probes"]

_MISSES_PER_ROUND = 4  # probes a replay may find missing before it stops for them (the next round asks them)


def default_cache_path() -> Path:
    """``probes.jsonl`` in the interlock cache folder (``$INTERLOCK_CACHE_DIR`` or ``~/.cache/interlock``)."""
    from interlock.generators.transformers.loading import cache_dir

    return cache_dir() / "probes.jsonl"


def uses_probes(policy: Policy) -> bool:
    """Whether a policy's governors include an answer probe (it needs a probe model or a probe cache)."""
    return any(isinstance(g, AnswerProbe) for g in policy.governors())


# -- the requests ---------------------------------------------------------------------------------------------------
def _phase_runs(text: str) -> PhaseRuns:
    """The phase runs of a recorded text, from its thinking tags (``()``: all answer)."""
    runs: list[tuple[int, Phase]] = []
    at = 0
    for part, phase in split_text(text, KNOWN_TAGS):
        runs.append((at, phase))
        at += len(part)
    return tuple(runs) if any(p == THINKING for _, p in runs) else ()


def _cut_runs(runs: PhaseRuns, end: int) -> list[tuple[int, Phase]]:
    return [(s, p) for s, p in runs if s < end] or ([(0, runs[0][1])] if runs else [])


def probe_request(question: str, text: str, runs: PhaseRuns, end: int, *, suffix: str, answer: str,
                  max_tokens: int) -> GenerationRequest:
    """The fork request a live probe at ``end`` of ``text`` sends (as ``Run.fork_request`` makes it): the text up to
    there and ``suffix`` in the phase there; a thinking closed with its own tag; ``answer`` starting the answer."""
    base = text[:end]
    cut = _cut_runs(runs, end)
    phase: Phase = cut[-1][1] if cut else ANSWER
    prefix = base + suffix
    if phase == THINKING:
        thinking = "".join(base[s:(cut[i + 1][0] if i + 1 < len(cut) else len(base))]
                           for i, (s, p) in enumerate(cut) if p == THINKING)
        tags = next((t for t in KNOWN_TAGS if t.open in thinking), KNOWN_TAGS[0])
        if not prefix.rstrip().endswith(tags.close):
            prefix += tags.close
        cut.append((len(prefix), ANSWER))
    prefix += answer
    phases: PhaseRuns = tuple(cut) if any(p == THINKING for _, p in cut) else ()
    return GenerationRequest(question, prefix=prefix, max_new_tokens=max_tokens, purpose="fork", greedy=True,
                             phases=phases)


def probe_key(model: str, settings: Mapping[str, Any], request: GenerationRequest) -> str:
    """The cache key of a probe: a hash of the probe model, its settings and everything the request sends."""
    blob = json.dumps({"model": model, "settings": dict(settings), "prompt": request.prompt,
                       "prefix": request.prefix, "phases": [list(r) for r in request.phases],
                       "max_tokens": request.max_new_tokens}, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


# -- the cache ------------------------------------------------------------------------------------------------------
def _chunk_record(c: Chunk) -> dict[str, Any]:
    return {"text": c.text, "tokens": c.n_tokens, "logprobs": None if c.logprobs is None else list(c.logprobs),
            "entropy": None if c.entropy is None else list(c.entropy), "finish": c.finish_reason}


def _chunk_of(d: Mapping[str, Any]) -> Chunk:
    lps, ent = d.get("logprobs"), d.get("entropy")
    return Chunk(str(d["text"]), logprobs=None if lps is None else tuple(float(x) for x in lps),
                 entropy=None if ent is None else tuple(float(x) for x in ent), tokens=int(d.get("tokens") or 0),
                 finish_reason=d.get("finish"))


class ProbeCache:
    """Probe answers by key, in a JSON Lines file (see the module docstring). Lines that cannot be read are
    skipped and counted (``skipped``); nothing already in the file is ever rewritten."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict[str, Any]] = {}
        self.skipped = 0
        self.hits = 0
        self.added = 0
        if self.path.exists():
            try:
                lines = self.path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise BudgetError(f"cannot read the probe cache {self.path}: {exc}") from None
            for line in lines:
                try:
                    entry = json.loads(line)
                    [_chunk_of(c) for c in entry["chunks"]]
                    self._entries[str(entry["key"])] = entry
                except (ValueError, KeyError, TypeError):
                    self.skipped += 1

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def chunks(self, key: str) -> list[Chunk] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self.hits += 1
        return [_chunk_of(c) for c in entry["chunks"]]

    def add(self, key: str, chunks: Sequence[Chunk], **about: Any) -> None:
        """Record a probe's chunks under ``key`` with what it was about (trace, position, model, settings)."""
        entry = {"key": key, **about, "chunks": [_chunk_record(c) for c in chunks]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8", errors="surrogatepass") as out:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
            out.flush()
        self._entries[key] = entry
        self.added += 1

    def entries(self) -> Iterator[dict[str, Any]]:
        return iter(self._entries.values())


# -- the probe models -------------------------------------------------------------------------------------------------
Answered = Callable[[int, list[Chunk]], None]  # (the index of a request, its chunks): called as each one comes


class Prober(Protocol):
    """Asks a model the probes that the cache lacks, handing each answer to ``answered`` as it comes (so the cache
    keeps it even if a later one fails). ``model`` names it in the cache keys; ``requests`` counts the calls made."""

    model: str
    requests: int

    async def ask(self, requests: Sequence[GenerationRequest], answered: Answered) -> None: ...


class HTTPProber:
    """Probes an OpenAI-compatible server (``concurrency`` requests at once), asking for logprobs and the 5 top
    alternatives of each token (``logprobs=False`` for a server that has none)."""

    def __init__(self, base_url: str, model: str, *, concurrency: int = 8, logprobs: bool = True,
                 timeout: float = 120.0, **options: Any) -> None:
        from interlock.generators.openai_compat import OpenAICompatible

        if concurrency < 1:
            raise BudgetError(f"probe concurrency must be >= 1, got {concurrency}")
        self.generator = OpenAICompatible(base_url, model, logprobs=logprobs, top_logprobs=5 if logprobs else 0,
                                          timeout=timeout, **options)
        self.model = f"{model}@openai-compatible"
        self.concurrency = concurrency
        self.requests = 0

    async def ask(self, requests: Sequence[GenerationRequest], answered: Answered) -> None:
        import anyio

        limiter = anyio.CapacityLimiter(self.concurrency)

        async def one(i: int, request: GenerationRequest) -> None:
            async with limiter:
                self.requests += 1
                answered(i, [c async for c in self.generator.stream(request)])

        try:
            async with anyio.create_task_group() as tg:
                for i, request in enumerate(requests):
                    tg.start_soon(one, i, request)
        finally:
            await self.generator.aclose()


class LocalProber:
    """Probes a local model (a folder or ``.gguf`` file, or ``"default"`` for the embedded SmolLM2), one probe at a
    time in the order given (probes of one trace, in order, reuse its KV cache)."""

    def __init__(self, model: str | os.PathLike[str] | Any, tokenizer: Any = None) -> None:
        from interlock.generators.transformers import Transformers

        if isinstance(model, str) and model in ("default", "smollm2"):
            self.generator = Transformers.default()
            self.model = "SmolLM2-135M-Instruct@local"
        elif isinstance(model, str | os.PathLike):
            self.generator = Transformers(model)
            self.model = f"{Path(model).name}@local"
        else:
            self.generator = Transformers(model, tokenizer)
            self.model = f"{getattr(model.config, '_name_or_path', '') or type(model).__name__}@local"
        self.requests = 0

    async def ask(self, requests: Sequence[GenerationRequest], answered: Answered) -> None:
        for i, request in enumerate(requests):
            self.requests += 1
            main = dataclasses.replace(request, purpose="main")  # reuses the KV cache of the trace's last probe
            answered(i, [c async for c in self.generator.stream(main)])


# -- offline forks from the cache ------------------------------------------------------------------------------------
@dataclass
class _Missing:
    key: str
    request: GenerationRequest
    trace: str
    position: int
    tokens: int


class _Enough(Exception):
    """A replay met enough missing probes for one round: it stops, and the next round goes on after they are asked."""


class _CacheForks:
    """The fork source of one replay: a probe at ``end`` is answered from the cache at once; a missing one is noted
    (and answered as no answer) in ``missing`` when collecting, else it is an error."""

    logprobs = True  # the probes may carry them (a policy that needs them and finds none is not applicable)

    def __init__(self, cache: ProbeCache, model: str, probe: AnswerProbe, rec: TraceRecord, runs: PhaseRuns,
                 missing: list[_Missing] | None) -> None:
        self.cache, self.model, self.probe, self.rec, self.runs, self.missing = cache, model, probe, rec, runs, missing

    def __call__(self, run: OfflineRun, end: int) -> _CacheFork:
        return _CacheFork(self, end, run.tokens.kept)


class _CacheFork:
    def __init__(self, source: _CacheForks, end: int, tokens: int) -> None:
        self.source, self.end, self.tokens = source, end, tokens

    def __call__(self, suffix: str, max_tokens: int, /, *, answer: str | None = None) -> Any:
        raise BudgetError("offline probes are answered at once (answer_now), not awaited")

    def answer_now(self, suffix: str, max_tokens: int, *, answer: str | None = None) -> list[Chunk]:
        s = self.source
        request = probe_request(s.rec.question, s.rec.text, s.runs, self.end, suffix=suffix, answer=answer or "",
                                max_tokens=max_tokens)
        key = probe_key(s.model, s.probe.settings, request)
        chunks = s.cache.chunks(key)
        if chunks is not None:
            return chunks
        if s.missing is None:
            raise BudgetError(f"the probe of {s.rec.id!r} at character {self.end} is not in the cache {s.cache.path}")
        s.missing.append(_Missing(key, request, s.rec.id, self.end, self.tokens))
        if sum(m.trace == s.rec.id for m in s.missing) >= _MISSES_PER_ROUND:
            raise _Enough
        return []


# -- evaluating probe policies ---------------------------------------------------------------------------------------
def _replay(rec: TraceRecord, governors: Sequence[Governor], chunk_tokens: int, forks: _CacheForks) -> Any:
    return replay_governors(governors, rec.question, rec.text, starts=rec.starts, chunks=rec.chunks,
                            chunk_tokens=chunk_tokens, forks=forks)


def _fill(recs: Sequence[TraceRecord], policy: Policy, cache: ProbeCache, prober: Prober | None,
          chunk_tokens: int, runs: Mapping[str, PhaseRuns]) -> None:
    """Ask the probe model, in rounds, every probe the policy's replays need that the cache lacks."""
    import anyio

    done: set[str] = set()
    model = _model(cache, prober)
    while True:
        missing: list[_Missing] = []
        pool = _pool(policy, recs)  # (a pooled policy replays the whole batch every round: shares depend on order)
        for rec in recs:
            if rec.id in done:
                continue
            governors = policy.governors()
            probe = next(g for g in governors if isinstance(g, AnswerProbe))
            if pool is not None:
                governors.append(pool.governor_for(rec.question, probe=probe))
            before = len(missing)
            with contextlib.suppress(_Enough):
                _replay(rec, governors, chunk_tokens, _CacheForks(cache, model, probe, rec, runs[rec.id], missing))
            if len(missing) == before and pool is None:
                done.add(rec.id)
        if not missing:
            return
        if prober is None:
            first = missing[0]
            raise BudgetError(f"policy {policy.name!r} needs {len(missing)}+ probes that the cache {cache.path} does "
                              f"not hold (first: trace {first.trace!r} at character {first.position}); give a probe "
                              "model (--probe-base-url URL --probe-model NAME, or --probe-model PATH)")
        unique = list({m.key: m for m in missing}.values())
        unique.sort(key=lambda m: (m.trace, m.position))
        anyio.run(prober.ask, [m.request for m in unique],
                  functools.partial(_keep, cache, unique, prober.model, policy_settings(policy)))


def _pool(policy: Policy, recs: Sequence[TraceRecord]) -> BudgetPool | None:
    """A fresh pool for a pooled policy over the batch (planned), or ``None``."""
    if policy.pool_tokens is None:
        return None
    pool = BudgetPool(policy.pool_tokens * len(recs), learn=policy.pool_learn)
    pool.plan([r.question for r in recs])
    return pool


def _keep(cache: ProbeCache, asked: Sequence[_Missing], model: str, settings: Mapping[str, Any], i: int,
          chunks: list[Chunk]) -> None:
    m = asked[i]
    cache.add(m.key, chunks, trace=m.trace, position=m.position, tokens=m.tokens, model=model, settings=dict(settings))


def _model(cache: ProbeCache, prober: Prober | None) -> str:
    if prober is not None:
        return prober.model
    models = {str(e.get("model")) for e in cache.entries()}
    if len(models) == 1:
        return models.pop()
    if not models:
        raise BudgetError(f"the probe cache {cache.path} is empty: give a probe model (--probe-base-url URL "
                          "--probe-model NAME, or --probe-model PATH)")
    raise BudgetError(f"the probe cache {cache.path} holds probes of several models ({', '.join(sorted(models))}): "
                      "name the one to use with --probe-model")


def policy_settings(policy: Policy) -> dict[str, Any]:
    probe = next(g for g in policy.governors() if isinstance(g, AnswerProbe))
    return dict(probe.settings)


def _outcome(rec: TraceRecord, governors: Sequence[Governor], chunk_tokens: int, forks: _CacheForks,
             scorer: AnswerScorer) -> dict[str, Any]:
    try:
        stop = _replay(rec, governors, chunk_tokens, forks)
    except ConfigError as exc:
        return {"na": str(exc)}
    probing = [g for g in governors if isinstance(g, AnswerProbe)]
    probes = [p for g in probing for p in g.last_probes]
    if probes and all(p.logprobs is None for p in probes) and any("" not in g.rules.needs for g in probing):
        return {"na": "the probe model gave no logprobs, which this policy's stop rules read (conf=, eat=)"}
    probe_tokens = sum(p.fork_tokens for p in probes)
    said: str | None
    kind: str | None
    if stop.by == AnswerProbe.name and probes:
        said, kind = probes[-1].answer, "probe"  # what the model answered when asked there
    else:
        found = stated_answer(rec.text[:stop.chars], complete=stop.reason == "complete")
        said, kind = (found.text, found.kind) if found else (None, None)
    return {**stop.to_dict(), "tokens": stop.tokens + probe_tokens, "kept": stop.tokens, "probe_tokens": probe_tokens,
            "probes": len(probes), "answer": said, "answer_kind": kind, "correct": scorer.correct(said, rec.reference),
            "na": None}


def evaluate_probe_policies(recs: Sequence[TraceRecord], results: list[dict[str, Any]], policies: Sequence[Policy],
                            *, cache: ProbeCache, prober: Prober | None, chunk_tokens: int,
                            scorer: AnswerScorer) -> None:
    """Each probe policy over every record (``results[i]["policies"][name]``, in the order of ``recs``, which are
    tokenised): the probes it needs are asked first where the cache lacks them, then each trace is replayed with
    its probes answered from the cache. A policy with a pool shares it across the batch, in order, and its shares
    learn from the probes (``pool:N:learn``). Outcomes add ``probes`` and ``probe_tokens`` (counted in ``tokens``,
    as fork tokens count live) and, for a stop by the probe, the probe's answer (``answer_kind: "probe"``)."""
    runs = {r.id: _phase_runs(r.text) for r in recs}
    for policy in policies:
        _fill(recs, policy, cache, prober, chunk_tokens, runs)
        model = _model(cache, prober)
        pool = _pool(policy, recs)
        for rec, result in zip(recs, results, strict=True):
            governors = policy.governors()
            probe = next(g for g in governors if isinstance(g, AnswerProbe))
            if pool is not None:
                governors.append(pool.governor_for(rec.question, probe=probe))
            forks = _CacheForks(cache, model, probe, rec, runs[rec.id], None)
            result["policies"][policy.name] = _outcome(rec, governors, chunk_tokens, forks, scorer)


ProberFactory = Callable[[], Prober]
