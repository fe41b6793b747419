"""Turning the monitor's prompt into the model's context.

Instruct models get their chat template: the prompt is the user message and the trace is the assistant
message being written, appended verbatim after the generation prompt (the text the template would produce
with ``continue_final_message``, without the risk of a template that trims the content). Base models get the
prompt as raw text. The trace is always tokenised on its own, so the token boundary between prompt and trace
is fixed and the same text always gives the same context.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from interlock.monitor.errors import ConfigError

__all__ = ["PromptFormat", "PromptFormatter"]

PromptFormat = Literal["auto", "chat", "raw"]


@dataclass(frozen=True)
class PromptFormatter:
    """Formats and tokenises the prompt part of the context (``format``: ``auto`` = chat when there is a template).
    ``template_kwargs`` are the template's switches (``{"enable_thinking": False}``)."""

    tokenizer: Any
    format: PromptFormat = "auto"
    system: str | None = None
    template_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in ("auto", "chat", "raw"):
            raise ConfigError(f"prompt_format must be 'auto', 'chat' or 'raw', got {self.format!r}")
        if self.format == "chat" and not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError("prompt_format='chat' but the tokenizer has no chat template; use 'raw'")
        template = getattr(self.tokenizer, "chat_template", None) or ""
        for name in self.template_kwargs:
            if self.uses_chat and isinstance(template, str) and name not in template:
                raise ConfigError(f"the chat template has no switch {name!r} (it never reads that variable); "
                                  f"it reads: enable_thinking={'enable_thinking' in template}")

    @property
    def uses_chat(self) -> bool:
        return self.format == "chat" or (self.format == "auto" and bool(getattr(self.tokenizer, "chat_template", None)))

    def text(self, prompt: str) -> str:
        """The prompt as the model sees it, up to where the trace starts."""
        if not self.uses_chat:
            return prompt
        messages = [{"role": "user", "content": prompt}]
        if self.system is not None:
            messages.insert(0, {"role": "system", "content": self.system})
        rendered = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                      **dict(self.template_kwargs))
        return str(rendered)

    def ids(self, prompt: str) -> list[int]:
        """Token ids of :meth:`text`; raw prompts get the tokenizer's own special tokens (e.g. BOS)."""
        encoded = self.tokenizer(self.text(prompt), add_special_tokens=not self.uses_chat)
        return list(encoded["input_ids"])
