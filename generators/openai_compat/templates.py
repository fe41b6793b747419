"""A model's chat template, rendered here: the way to continue a thinking that a chat server cannot continue.

A chat server hides its template, and most thinking templates close the thinking of an assistant message they are
given (or drop it), so a chat request cannot say "go on inside this thinking". The completions endpoint can: it
continues raw text. :class:`ChatTemplate` renders the prompt exactly as the server would (the template from the
model's tokenizer folder, a ``.jinja`` file or the template text), and :func:`render_prefix` appends the trace
with its thinking tags where the model expects them, unclosed while the thinking goes on. This is what the
template's own renderer does (Hugging Face's ``apply_chat_template``: a sandboxed Jinja environment with
``trim_blocks`` and ``lstrip_blocks``, ``raise_exception``, ``strftime_now`` and ``tojson``).
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from interlock import ConfigError, GenerationRequest
from interlock.monitor.phases import THINKING, ThinkingTags

__all__ = ["ChatTemplate", "render_prefix"]

_MAX_TEMPLATE_BYTES = 1 << 20


def _token(value: Any) -> str:
    """A special token as tokenizer_config.json writes it (a string, or an object with its ``content``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        return str(value["content"])
    return ""


class ChatTemplate:
    """A chat template to render prompts with, from a tokenizer folder (``tokenizer_config.json``'s
    ``chat_template``, or ``chat_template.jinja``), a ``.jinja`` file, or the template text itself.

    ``kwargs`` are the template's switches (``{"enable_thinking": True}``), passed to every rendering as a
    server passes ``chat_template_kwargs``. ``bos_token``/``eos_token`` come from the folder's config unless given.
    """

    def __init__(self, source: str | os.PathLike[str], *, kwargs: Mapping[str, Any] | None = None,
                 bos_token: str | None = None, eos_token: str | None = None) -> None:
        text, config, where = self._load(source)
        self.source = where
        self.bos_token = bos_token if bos_token is not None else _token(config.get("bos_token"))
        self.eos_token = eos_token if eos_token is not None else _token(config.get("eos_token"))
        self.kwargs = dict(kwargs or {})
        try:
            import jinja2
            import jinja2.ext
            import jinja2.sandbox
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise ConfigError(f"rendering a chat template needs jinja2 ({exc})") from None

        def raise_exception(message: str) -> None:
            raise jinja2.exceptions.TemplateError(message)

        def tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
                   separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
            return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                              sort_keys=sort_keys)

        def strftime_now(fmt: str) -> str:
            return datetime.datetime.now().strftime(fmt)

        env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                           extensions=[jinja2.ext.loopcontrols])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = strftime_now
        try:
            self._template = env.from_string(text)
        except jinja2.exceptions.TemplateError as exc:
            raise ConfigError(f"the chat template from {where} is not valid Jinja: {exc}") from None
        self._errors = (jinja2.exceptions.TemplateError,)

    @staticmethod
    def _load(source: str | os.PathLike[str]) -> tuple[str, dict[str, Any], str]:
        """(template text, tokenizer config, where it came from)."""
        if isinstance(source, str) and ("{%" in source or "{{" in source):
            return source, {}, "the template text given"
        path = Path(source)
        config: dict[str, Any] = {}
        if path.is_dir():
            config_path = path / "tokenizer_config.json"
            if config_path.is_file():
                try:
                    loaded = json.loads(config_path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise ConfigError(f"cannot read {config_path}: {exc}") from None
                config = loaded if isinstance(loaded, dict) else {}
            jinja_file = path / "chat_template.jinja"
            if jinja_file.is_file():
                return _read(jinja_file), config, str(jinja_file)
            template = config.get("chat_template")
            if isinstance(template, list):  # named templates: the default one
                named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
                template = named.get("default")
            if not isinstance(template, str) or not template:
                raise ConfigError(f"{path} holds no chat template (no chat_template.jinja, no 'chat_template' in "
                                  "tokenizer_config.json)")
            return template, config, str(config_path)
        if path.is_file():
            return _read(path), config, str(path)
        raise ConfigError(f"chat template {str(source)!r} is neither a tokenizer folder, a template file nor template "
                          "text (no '{%' or '{{' in it)")

    def render(self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True,
               **kwargs: Any) -> str:
        """The prompt text for ``messages`` (with the assistant's generation prompt by default)."""
        values = {"bos_token": self.bos_token, "eos_token": self.eos_token, **self.kwargs, **kwargs}
        try:
            return str(self._template.render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                             **values))
        except self._errors as exc:
            raise ConfigError(f"the chat template from {self.source} failed to render: {exc}") from None

    def __repr__(self) -> str:
        return f"ChatTemplate({self.source!r})"


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > _MAX_TEMPLATE_BYTES:
            raise ConfigError(f"{path} is larger than {_MAX_TEMPLATE_BYTES} bytes: not a chat template")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the chat template {path}: {exc}") from None


def render_prefix(prompt_text: str, request: GenerationRequest, tags: ThinkingTags) -> str:
    """``prompt_text`` (the rendered prompt) followed by the trace, its thinking between ``tags``: the opening tag
    unless the prompt or the thinking already has it, the closing tag where an answer follows and the thinking
    does not end with it, none while the thinking goes on (``request.phase == "thinking"``)."""
    out = [prompt_text]
    opened = prompt_text.rstrip().endswith(tags.open)
    parts = request.parts()
    for i, (text, phase) in enumerate(parts):
        if phase == THINKING:
            if not opened and not text.lstrip().startswith(tags.open):
                out.append(tags.open if text[:1].isspace() else tags.open + "\n")
            out.append(text)
            opened = True
            closing = i + 1 < len(parts) or request.phase != THINKING
            if closing and not text.rstrip().endswith(tags.close):
                out.append(tags.close)
            if closing:
                opened = False
        else:
            out.append(text)
    if request.phase == THINKING and not opened:
        out.append(tags.open)  # a thinking to begin (a fork that asks for one)
    return "".join(out)
