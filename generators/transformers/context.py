"""The model's context for one trace: token ids, the KV cache over them, and the text they decode to.

A new request names a prompt and a trace prefix (text). :meth:`KVContext.plan` turns it into token ids that
reuse as much of the cache as possible (``tokenization="reuse"``): the cached trace tokens up to the last
token boundary inside the text both share, then the rest of the prefix (usually just the feedback after a
rollback) tokenised anew. The plan is checked to decode to exactly the requested prefix; when it does not (a
tokenizer whose pieces do not concatenate), the prefix is tokenised whole. The cache is then cropped to the
longest common token prefix and only the remaining tokens run through the model, in chunks so that a cancel
lands quickly.

With ``tokenization="canonical"`` the prefix is always tokenised whole, so the context is a function of the
text alone (a rerun from a trace file sees the same tokens); the cache is still cropped to the longest common
token prefix, which ends earlier when the model had produced a non-canonical tokenisation.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from typing import Any

from interlock.generators.transformers.errors import ContextOverflowError

__all__ = ["KVContext", "TraceDecoder", "common_prefix"]

REPLACEMENT = "\ufffd"  # what decode gives for bytes that do not (yet) form a character


def common_prefix(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common prefix of two sequences (strings or lists)."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class TraceDecoder:
    """Decodes trace token ids after the prompt's last few tokens, so tokenizers that treat a word-initial
    token differently (SentencePiece's leading space) decode the trace as it reads in context."""

    def __init__(self, tokenizer: Any, prompt_ids: Sequence[int]) -> None:
        self._tokenizer = tokenizer
        # the Rust tokenizer decodes without the per-id Python checks of tokenizer.decode (quadratic on long traces)
        self._backend = getattr(tokenizer, "backend_tokenizer", None)
        self._anchor = list(prompt_ids[-3:])
        self._anchor_text = self._decode(self._anchor)

    def _decode(self, ids: Sequence[int]) -> str:
        if not ids:
            return ""
        if self._backend is not None:
            return str(self._backend.decode(list(ids), skip_special_tokens=False))
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False))

    def piece(self, ids: Sequence[int], start: int, end: int) -> str | None:
        """The text ``ids[start:end]`` adds after ``ids[:start]``, decoded with three tokens of context;
        ``None`` when that context does not decode as a prefix (then decode the whole)."""
        if start < 3:
            full, head = self(ids[:end]), self(ids[:start])
        else:
            full, head = self._decode(ids[start - 3:end]), self._decode(ids[start - 3:start])
        return full[len(head):] if full.startswith(head) else None

    def __call__(self, ids: Sequence[int]) -> str:
        if not self._anchor:
            return self._decode(ids)
        full = self._decode([*self._anchor, *ids])
        if full.startswith(self._anchor_text):
            return full[len(self._anchor_text):]
        return self._decode(ids)


def _clean_end(text: str) -> int:
    """Characters of the trace a token boundary may be cut at (-1: the text ends mid-character)."""
    return -1 if text.endswith(REPLACEMENT) else len(text)


class KVContext:
    """Token ids, their KV cache and next-token logits; mutated only by the one thread that owns it at a time."""

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int | None, reuse: bool = True) -> None:
        self.model = model
        self.reuse = reuse  # False: the trace is always tokenised whole (context = a function of the text)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.ids: list[int] = []
        self.cache: Any = None
        self.logits: Any = None  # 1-D float32 tensor: the next-token logits after ``ids``
        self.prompt_len = 0
        self.decoder = TraceDecoder(tokenizer, [])
        self.trace_text = ""
        self.ends: list[int] = []  # ends[i]: characters of trace text after trace token i (-1: mid-character)
        self.forwarded = 0  # tokens run through the model over the context's life (for tests and benchmarks)
        self._cache_keyword = _cache_keyword(model)

    @property
    def trace_ids(self) -> list[int]:
        return self.ids[self.prompt_len:]

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    # -- planning ----------------------------------------------------------------------------------------
    def plan(self, prompt_ids: list[int], prefix: str) -> list[int]:
        """The full token ids (prompt + trace) for continuing ``prompt_ids`` + ``prefix``, reusing cached tokens."""
        trace = self._trace_plan(prompt_ids, prefix)
        target = [*prompt_ids, *trace]
        if self.max_length is not None and len(target) >= self.max_length:
            raise ContextOverflowError(
                f"the prompt and prefix take {len(target)} tokens; the model's context holds {self.max_length}")
        return target

    def _trace_plan(self, prompt_ids: list[int], prefix: str) -> list[int]:
        if not self.reuse or self.prompt_len != len(prompt_ids) or self.ids[:self.prompt_len] != prompt_ids:
            return self.encode(prefix)
        shared = common_prefix(self.trace_text, prefix)
        trace = self.trace_ids
        decoder = TraceDecoder(self.tokenizer, prompt_ids)
        tries = 0
        for keep in range(min(len(self.ends), len(trace)), -1, -1):
            if keep == 0:
                chars = 0
            else:
                chars = self.ends[keep - 1]
                if chars < 0:  # ended mid-character when cached; the characters after may have settled it
                    text = decoder(trace[:keep])
                    chars = len(text) if self.trace_text.startswith(text) else -1
                if not 0 <= chars <= shared:
                    continue
            candidate = [*trace[:keep], *self.encode(prefix[chars:])]
            if decoder(candidate) == prefix:
                return candidate
            tries += 1
            if tries == 3:
                break
        return self.encode(prefix)

    def exact(self, prompt_ids: list[int], target: list[int], prefix: str) -> bool:
        """Whether the planned trace tokens decode to ``prefix`` exactly (not so for a tokenizer that
        normalises text or maps characters to an unknown token)."""
        return TraceDecoder(self.tokenizer, prompt_ids)(target[len(prompt_ids):]) == prefix

    # -- mutation ----------------------------------------------------------------------------------------
    def adopt(self, target: list[int], prompt_len: int) -> list[int]:
        """Crop to the longest common prefix with ``target``; returns the tokens still to run through the model."""
        keep = common_prefix(self.ids, target)
        if keep == len(target) and (keep < len(self.ids) or self.logits is None):
            keep -= 1  # the next-token logits after the last token are needed: run it again
        keep = max(keep, 0)
        if keep < len(self.ids):
            self.logits = None
            self._crop(keep)
        if prompt_len != self.prompt_len or self.ids[:prompt_len] != target[:prompt_len]:
            self.decoder = TraceDecoder(self.tokenizer, target[:prompt_len])
        self.prompt_len = prompt_len
        trace_kept = max(0, len(self.ids) - prompt_len)
        del self.ends[trace_kept:]
        self.trace_text = self.decoder(self.trace_ids)
        return target[len(self.ids):]

    def _crop(self, keep: int) -> None:
        if self.cache is not None:
            cached = int(self.cache.get_seq_length())
            if keep == 0 or not getattr(self.cache, "is_croppable", True):
                self.cache = None
                keep = 0
            elif cached > keep:
                self.cache.crop(keep - cached)  # negative: remove that many (the only form transformers 5 takes)
        del self.ids[keep:]

    def forward(self, tokens: Sequence[int], *, text: str | None = None) -> None:
        """Run ``tokens`` through the model after the context; ``text`` is the trace text after them if known."""
        import torch

        if not tokens:
            return
        if self.cache is None:
            from transformers import DynamicCache

            self.cache = DynamicCache(config=self.model.config)
        device = self.model.device
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([list(tokens)], device=device), use_cache=True, logits_to_keep=1,
                             **{self._cache_keyword: self.cache})
        cache = getattr(out, "cache", None)
        self.cache = cache if cache is not None else out.past_key_values
        self.logits = out.logits[0, -1].float()
        self.forwarded += len(tokens)
        trace_before = len(self.ids) - self.prompt_len
        self.ids.extend(tokens)
        new_trace = len(self.ids) - self.prompt_len - max(trace_before, 0)
        if new_trace <= 0:
            return
        trace = self.trace_ids
        first = len(trace) - new_trace
        base, chars = self._clean_before(first)
        for i in range(first, len(trace)):
            if i == len(trace) - 1 and text is not None:
                end = _clean_end(text)
            else:
                piece = self.decoder.piece(trace, base, i + 1) if i + 1 - base <= 32 else None
                end = (-1 if piece.endswith(REPLACEMENT) else chars + len(piece)) if piece is not None else \
                    _clean_end(self.decoder(trace[:i + 1]))
            self.ends.append(end)
            if end >= 0:
                base, chars = i + 1, end
        self.trace_text = text if text is not None else self.decoder(trace)
        if self.ends and self.ends[-1] >= 0 and self.ends[-1] != len(self.trace_text):
            # the pieces did not add up (a tokenizer that is not concatenative): decode each prefix instead
            self.ends[first:] = [_clean_end(self.decoder(trace[:i + 1])) for i in range(first, len(trace))]

    def _clean_before(self, index: int) -> tuple[int, int]:
        """The last token boundary at or before trace token ``index`` that ends on a whole character."""
        for k in range(index, 0, -1):
            if self.ends[k - 1] >= 0:
                return k, self.ends[k - 1]
        return 0, 0

    def fork(self, target: list[int], prompt_len: int) -> tuple[KVContext, list[int]]:
        """A copy holding the common prefix with ``target`` (the cache is copied; this context is untouched)."""
        other = KVContext(self.model, self.tokenizer, max_length=self.max_length, reuse=self.reuse)
        keep = common_prefix(self.ids, target)
        if keep == len(target):
            keep -= 1
        keep = max(0, keep)
        if keep > 0 and self.cache is not None and getattr(self.cache, "is_croppable", True):
            other.cache = copy.deepcopy(self.cache)
            other.ids = list(self.ids)
            other._crop(keep)
        other.prompt_len = prompt_len
        other.decoder = TraceDecoder(self.tokenizer, target[:prompt_len])
        other.ends = list(self.ends[:max(0, len(other.ids) - prompt_len)]) if prompt_len == self.prompt_len else []
        if len(other.ends) != max(0, len(other.ids) - prompt_len):
            other.ends = [_clean_end(other.decoder(other.trace_ids[:i + 1]))
                          for i in range(max(0, len(other.ids) - prompt_len))]
        other.trace_text = other.decoder(other.trace_ids)
        return other, target[len(other.ids):]


def _cache_keyword(model: Any) -> str:
    """The name ``forward`` takes the KV cache by: ``cache`` in newer transformers, ``past_key_values`` before
    (the old name is deprecated there and goes away in 5.40)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"
