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

A trace with a thinking (``request.phases``) puts it back where chat templates take it: a thinking that has ended
goes in the assistant message's ``reasoning`` field (vLLM 0.11 and later reads that name) and ``reasoning_content``
(older vLLM, SGLang, llama.cpp, DeepSeek), the answer in its ``content``. A thinking that must go on (a rollback or
a fork inside it) cannot be said with those fields, since templates close the thinking of a message they are
given: the ``prefill`` layout puts it in the content after its opening tag, unclosed, for templates that keep the
final message as it is (DeepSeek-R1's, llama.cpp's assistant prefill); the ``completions`` route renders the
chat template here and continues the raw text (see :mod:`~interlock.generators.openai_compat.templates`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from interlock import GenerationRequest
from interlock.monitor.phases import ANSWER, THINKING, ThinkingTags, strip_tags

__all__ = ["CONTINUE_FIELDS", "DEFAULT_CONTINUE_INSTRUCTION", "THINKING_BUDGET_FIELDS", "ChatShape", "Sampling",
           "assistant_message", "chat_body", "chat_shape", "completions_body", "thinking_budget_fields"]

ChatShape = Literal["fresh", "continue", "reask"]
NEWLINE = "\n"

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


# How servers take a per-request thinking budget (tokens): vLLM's ``thinking_token_budget`` (server started with
# ``--reasoning-config``), SGLang's ``custom_params.thinking_budget`` (``--enable-strict-thinking``), llama.cpp's
# ``thinking_budget_tokens``.
THINKING_BUDGET_FIELDS = ("vllm", "sglang", "llama.cpp")


def thinking_budget_fields(server: str, tokens: int) -> dict[str, Any]:
    """The request fields that ask ``server`` (one of :data:`THINKING_BUDGET_FIELDS`) for a thinking budget."""
    if server == "vllm":
        return {"thinking_token_budget": tokens}
    if server == "sglang":
        return {"custom_params": {"thinking_budget": tokens}}
    return {"thinking_budget_tokens": tokens}


def completions_body(model: str, request: GenerationRequest, sampling: Sampling,
                     extra_body: dict[str, Any], *, prompt: str | None = None) -> dict[str, Any]:
    """The body for ``/v1/completions``: the raw text ``prompt + prefix`` to continue (or ``prompt`` as given:
    a rendered chat template with the trace in it)."""
    text = request.prompt + request.prefix if prompt is None else prompt
    body: dict[str, Any] = {"model": model, "prompt": text, "stream": True}
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


def assistant_message(request: GenerationRequest, tags: ThinkingTags, *, opened: bool = False) -> dict[str, Any]:
    """The final assistant message that holds the trace so far (see the module docstring). ``opened``: the
    server's template opens the thinking itself, so a thinking that goes on has no opening tag of its own."""
    if not request.phases or all(phase == ANSWER for _, phase in request.phases):
        return {"role": "assistant", "content": request.prefix}
    if request.phase == THINKING:  # prefill: the thinking in the content, unclosed
        text = request.prefix
        if not opened and not text.lstrip().startswith(tags.open):
            text = tags.open + ("" if text[:1].isspace() else NEWLINE) + text
        return {"role": "assistant", "content": text}
    thinking = strip_tags(request.thinking)
    answer = request.answer
    if not answer:  # nothing to anchor a continuation in the content: the closed thinking, as templates write it
        return {"role": "assistant", "content": f"{tags.open}\n{thinking.strip(NEWLINE)}\n{tags.close}\n\n"}
    return {"role": "assistant", "content": answer, "reasoning": thinking, "reasoning_content": thinking}


def chat_body(model: str, request: GenerationRequest, sampling: Sampling, extra_body: dict[str, Any], *,
              shape: ChatShape, system_prompt: str | None = None,
              continue_instruction: str = DEFAULT_CONTINUE_INSTRUCTION, tags: ThinkingTags | None = None,
              opened: bool = False, head: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The body for ``/v1/chat/completions`` in the given shape. ``head``: the messages before the answer (a
    client's whole conversation); by default ``[system?, user: prompt]``."""
    messages: list[dict[str, Any]] = []
    if head is not None:
        messages.extend(dict(m) for m in head)
    else:
        if system_prompt:
            messages.append({"role": "system", "content": system_prompt})
        messages.append({"role": "user", "content": request.prompt})
    if shape != "fresh":
        messages.append(assistant_message(request, tags or ThinkingTags(), opened=opened))
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
