"""State extraction by forking the model: ask the generator itself what the current state is.

Some state is hard to read off the text with patterns (the current partial answer, the assignments so far).
A :class:`ForkExtractor` forks the trace at the checked position, appends an extraction prompt, lets the
model answer greedily for a bounded number of tokens and parses the answer; the main trace never sees it and
the fork's tokens are counted apart (``result.tokens.fork``)::

    Constraints(spec, extractor=ForkExtractor("\\nCurrent assignments as JSON:", max_tokens=64))

A fork at a point inside a reasoning model's thinking continues the thinking (the prompt is appended to it);
``after_thinking=True`` ends the thinking first and makes the prompt the start of the answer, the question a
thinking model answers best ("so the answer is"). The monitor provides ``view.fork`` when the generator has
``capabilities.fork`` (a copy of the KV cache in
the transformers backend, a separate greedy request elsewhere). Without it, and whenever the fork fails,
times out or answers something unparsable, the extractor returns an :class:`~monitor.Unknown` verdict with
the reason instead of raising; built-in verifiers pass it through as their verdict, and a verifier function
of your own should do the same (``if isinstance(state, Unknown): return state``). The extractor is async, so
it runs in the event loop where the fork lives: a ``Verifier`` subclass with an ``async def extract`` may check
in a thread or process (as ``Constraints`` does); a ``@verifier`` function with this extractor runs in the loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from interlock import TraceView, Unknown
from interlock.verifiers.errors import VerifierConfigError

__all__ = ["ForkExtractor", "first_json"]

_DECODER = json.JSONDecoder()


def first_json(text: str) -> Any:
    """The first JSON object or array in ``text`` (models often add words before or after it)."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        raise ValueError("no JSON object or array in the answer")
    value, _ = _DECODER.raw_decode(text, min(starts))
    return value


class ForkExtractor:
    """An extractor (a function of the view, async) that asks a fork of the model for the state.

    - ``prompt``: appended to the trace in the fork, e.g. ``"\\nCurrent assignments as JSON:"``.
    - ``max_tokens``: the most tokens the fork may generate.
    - ``parse``: turns the answer into the state (default :func:`first_json`); an exception becomes ``Unknown``.
    - ``stop``: strings that end the answer (the text from the first one on is dropped before parsing).
    - ``timeout``: seconds to wait for the fork.
    - ``after_thinking``: in a thinking, end it before the prompt, which then starts the answer.
    """

    def __init__(self, prompt: str, *, max_tokens: int = 64, parse: Callable[[str], Any] = first_json,
                 stop: Sequence[str] = (), timeout: float = 30.0, after_thinking: bool = False) -> None:
        if not isinstance(prompt, str) or not prompt:
            raise VerifierConfigError("ForkExtractor needs a non-empty extraction prompt")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise VerifierConfigError(f"ForkExtractor: max_tokens must be a positive integer, got {max_tokens!r}")
        if not callable(parse):
            raise VerifierConfigError(f"ForkExtractor: parse must be callable, got {parse!r}")
        if not timeout > 0:
            raise VerifierConfigError(f"ForkExtractor: timeout must be positive, got {timeout!r}")
        self.prompt = prompt
        self.max_tokens = max_tokens
        self.parse = parse
        self.stop = tuple(stop)
        self.timeout = timeout
        self.after_thinking = bool(after_thinking)

    async def answer(self, view: TraceView) -> str | Unknown:
        """The fork's raw answer (cut at the first stop string), or ``Unknown`` saying why there is none."""
        if view.fork is None:
            return Unknown(reason="the generator cannot fork (capabilities.fork is false), so the state cannot be "
                                  "extracted by forking the model", span=view.step.span)
        try:
            with anyio.fail_after(self.timeout):
                if self.after_thinking:
                    text = await view.fork("", self.max_tokens, answer=self.prompt)
                else:
                    text = await view.fork(self.prompt, self.max_tokens)
        except TimeoutError:
            return Unknown(reason=f"the fork did not answer within {self.timeout:g} s", span=view.step.span)
        except Exception as exc:
            return Unknown(reason=f"the fork failed: {type(exc).__name__}: {exc}", span=view.step.span)
        cuts = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        return text[:min(cuts)] if cuts else text

    async def __call__(self, view: TraceView) -> Any:
        text = await self.answer(view)
        if isinstance(text, Unknown):
            return text
        try:
            return self.parse(text)
        except Exception as exc:
            shown = text.strip()[:80]
            return Unknown(reason=f"could not parse the fork's answer {shown!r}: {type(exc).__name__}: {exc}",
                           span=view.step.span)

    def __repr__(self) -> str:
        return f"ForkExtractor({self.prompt!r}, max_tokens={self.max_tokens})"
