"""What :class:`~generators.OpenAICompatible` sends: the JSON body of one streaming request.

Completions (``/v1/completions``): ``prompt`` is the prompt followed by the trace so far, byte for byte; the
server continues that raw text, so a rollback is a new request with the cut trace plus the feedback.

Chat (``/v1/chat/completions``): the prompt is the user message and the trace so far is the assistant's
answer. Three shapes, chosen by ``ChatShape``:

- ``fresh`` (empty trace): ``[system?, user: prompt]``.
- ``continue`` (the server can continue a final assistant message, as vLLM and SGLang can):
  ``[system?, user: prompt, assistant: trace]`` and the fields ``"continue_final_message": true,
  "add_generation_prompt": false``; the model goes on inside the same assistant message.
- ``reask`` (other servers): ``[system?, user: prompt, assistant: trace, user: continue_instruction]``; the
  model answers the instruction in a new assistant message, which the monitor appends to the trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from interlock import GenerationRequest

__all__ = ["CONTINUE_FIELDS", "DEFAULT_CONTINUE_INSTRUCTION", "ChatShape", "Sampling", "chat_body",
           "chat_shape", "completions_body"]

ChatShape = Literal["fresh", "continue", "reask"]

# The extra request fields of vLLM (and SGLang) that continue the last assistant message.
CONTINUE_FIELDS: dict[str, Any] = {"continue_final_message": True, "add_generation_prompt": False}

DEFAULT_CONTINUE_INSTRUCTION = (
    "Continue your answer exactly where it stops, without repeating any of it and without comment."
)


@dataclass(frozen=True)
class Sampling:
    """The sampling fields of every request (``None``: the server's default, not sent)."""

    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0

    def fields(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {}
        temperature = 0.0 if request.greedy else self.temperature
        if temperature is not None:
            body["temperature"] = temperature
        if self.top_p is not None and not request.greedy:
            body["top_p"] = self.top_p
        if self.seed is not None:
            body["seed"] = self.seed
        limits = [n for n in (self.max_tokens, request.max_new_tokens) if n is not None]
        if limits:
            body["max_tokens"] = min(limits)
        if request.stop:
            body["stop"] = list(request.stop)
        return body


def completions_body(model: str, request: GenerationRequest, sampling: Sampling,
                     extra_body: dict[str, Any]) -> dict[str, Any]:
    """The body for ``/v1/completions``: the raw text ``prompt + prefix`` to continue."""
    body: dict[str, Any] = {"model": model, "prompt": request.prompt + request.prefix, "stream": True}
    body.update(sampling.fields(request))
    if sampling.logprobs:
        # the legacy API takes the number of alternatives; 1 also returns the chosen token's logprob
        body["logprobs"] = max(1, sampling.top_logprobs)
    body.update(extra_body)
    return body


def chat_shape(request: GenerationRequest, can_continue: bool) -> ChatShape:
    """Which message layout a request gets (see the module docstring)."""
    if not request.prefix:
        return "fresh"
    return "continue" if can_continue else "reask"


def chat_body(model: str, request: GenerationRequest, sampling: Sampling, extra_body: dict[str, Any], *,
              shape: ChatShape, system_prompt: str | None = None,
              continue_instruction: str = DEFAULT_CONTINUE_INSTRUCTION) -> dict[str, Any]:
    """The body for ``/v1/chat/completions`` in the given shape."""
    messages: list[dict[str, str]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": request.prompt})
    if shape != "fresh":
        messages.append({"role": "assistant", "content": request.prefix})
    if shape == "reask":
        messages.append({"role": "user", "content": continue_instruction})
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": True}
    body.update(sampling.fields(request))
    if sampling.logprobs:
        body["logprobs"] = True
        if sampling.top_logprobs:
            body["top_logprobs"] = sampling.top_logprobs
    if shape == "continue":
        body.update(CONTINUE_FIELDS)
    body.update(extra_body)
    return body
