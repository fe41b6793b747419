"""Options shared by ``interlock run``, ``proxy`` and ``replay``: one name per concept, each with an environment
default, so that a script sets ``INTERLOCK_MODEL`` once instead of repeating ``--model`` in every call.

| option         | variable              | meaning                                                              |
|----------------|-----------------------|----------------------------------------------------------------------|
| ``--model``    | ``INTERLOCK_MODEL``   | a local model (folder or .gguf), or the server's model name          |
| ``--base-url`` | ``INTERLOCK_BASE_URL``| an OpenAI-compatible server (``--openai-base-url``: hidden alias)    |
| ``-v/--verifier`` | ``INTERLOCK_VERIFIERS`` | verifier names, comma-separated in the variable                  |
| ``--max-tokens`` | ``INTERLOCK_MAX_TOKENS`` | the total token budget of one run (one proxied request)         |

An option on the command line wins over its variable. A variable that does not parse is an error that names it.
"""

from __future__ import annotations

import argparse
import os

from interlock.monitor.errors import ConfigError
from interlock.monitor.phases import ThinkingTags

__all__ = ["ENV", "add_base_url", "add_max_tokens", "add_model", "add_reasoning", "add_thinking_tags", "add_verifiers",
           "chosen_verifiers", "env_int", "max_tokens", "thinking_budget", "thinking_generator_options",
           "thinking_tags"]

ENV = {"model": "INTERLOCK_MODEL", "base_url": "INTERLOCK_BASE_URL", "verifiers": "INTERLOCK_VERIFIERS",
       "max_tokens": "INTERLOCK_MAX_TOKENS"}


def _env(key: str) -> str | None:
    value = os.environ.get(ENV[key], "").strip()
    return value or None


def env_int(key: str, default: int) -> int:
    """The integer in the variable for ``key``, else ``default``; a bad value raises :class:`ConfigError`."""
    raw = _env(key)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"${ENV[key]} must be an integer, got {raw!r}") from None


def add_model(parser: argparse.ArgumentParser | argparse._ArgumentGroup, help_text: str) -> None:
    parser.add_argument("--model", metavar="PATH_OR_NAME", default=_env("model"),
                        help=f"{help_text} (env: {ENV['model']})")


def add_base_url(parser: argparse.ArgumentParser | argparse._ArgumentGroup, help_text: str) -> None:
    parser.add_argument("--base-url", metavar="URL", default=_env("base_url"),
                        help=f"{help_text} (env: {ENV['base_url']})")
    parser.add_argument("--openai-base-url", dest="base_url", metavar="URL", help=argparse.SUPPRESS)


def add_verifiers(parser: argparse.ArgumentParser | argparse._ArgumentGroup, help_text: str) -> None:
    parser.add_argument("-v", "--verifier", action="append", default=None, metavar="NAME", dest="verifiers",
                        help=f"{help_text}; repeatable (env: {ENV['verifiers']}, comma-separated)")


def chosen_verifiers(args: argparse.Namespace) -> list[str] | None:
    """The ``-v`` names, else those in ``$INTERLOCK_VERIFIERS``, else ``None`` (the command's default)."""
    names: list[str] | None = args.verifiers
    if names:
        return list(names)
    raw = _env("verifiers")
    if raw is None:
        return None
    return [n.strip() for n in raw.split(",") if n.strip()]


def add_max_tokens(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: int | None,
                   help_text: str) -> None:
    parser.add_argument("--max-tokens", type=int, default=None, metavar="N",
                        help=f"{help_text} (env: {ENV['max_tokens']}; default: {default})")
    parser.set_defaults(_max_tokens_default=default)


def max_tokens(args: argparse.Namespace) -> int | None:
    """``--max-tokens``, else ``$INTERLOCK_MAX_TOKENS``, else the command's default; must be >= 1."""
    default: int | None = getattr(args, "_max_tokens_default", None)
    value: int | None
    if args.max_tokens is not None:
        value = int(args.max_tokens)
    elif _env("max_tokens") is not None:
        value = env_int("max_tokens", 0)
    else:
        value = default
    if value is not None and value < 1:
        raise ConfigError(f"--max-tokens must be >= 1, got {value}")
    return value


def add_reasoning(parser: argparse.ArgumentParser) -> None:
    """The options for reasoning models: the thinking's budget, its switch, and how a thinking is continued."""
    group = parser.add_argument_group("reasoning models (see the README's \"Reasoning models\")")
    group.add_argument("--max-thinking-tokens", type=int, metavar="N",
                       help="cap the thinking at N tokens; then it ends with the budget message and the model answers")
    group.add_argument("--min-thinking-tokens", type=int, metavar="N",
                       help="a thinking that ends before N tokens is reopened with 'Wait' (at most twice)")
    group.add_argument("--thinking-budget-message", metavar="TEXT", default=None,
                       help="what ends a thinking that spent its budget (default: 'Considering the limited time, "
                            "I have to give the solution now.')")
    group.add_argument("--server-thinking-budget", choices=("vllm", "sglang", "llama.cpp"),
                       help="with --base-url: ask the server to enforce --max-thinking-tokens in its own request "
                            "field (checked; enforced here when it does not)")
    group.add_argument("--thinking", choices=("on", "off"),
                       help="switch the chat template's thinking on or off (enable_thinking), where it has that switch")
    group.add_argument("--chat-template", metavar="PATH",
                       help="with --base-url: the model's tokenizer folder or chat template file, to continue a "
                            "thinking after a rollback over /v1/completions with the prompt rendered here")
    group.add_argument("--thinking-continuation", choices=("auto", "completions", "prefill"), default="auto",
                       help="with --base-url: how a rollback continues inside the thinking (default auto: "
                            "completions with --chat-template, else a chat prefill)")


def thinking_budget(args: argparse.Namespace) -> object | None:
    """The :class:`~interlock.monitor.governors.ThinkingBudget` the options ask for, or ``None``."""
    if args.max_thinking_tokens is None and args.min_thinking_tokens is None:
        if args.server_thinking_budget:
            raise ConfigError("--server-thinking-budget needs --max-thinking-tokens (the budget to ask for)")
        return None
    from interlock.monitor.governors.thinking_budget import DEFAULT_BUDGET_MESSAGE, ThinkingBudget

    message = args.thinking_budget_message if args.thinking_budget_message is not None else DEFAULT_BUDGET_MESSAGE
    return ThinkingBudget(args.max_thinking_tokens, min_tokens=args.min_thinking_tokens, message=message,
                          server=bool(args.server_thinking_budget))


def thinking_generator_options(args: argparse.Namespace, *, http: bool) -> dict[str, object]:
    """Keyword arguments for the generator: the thinking switch, and over HTTP the template and budget field."""
    options: dict[str, object] = {}
    if http:
        if args.thinking is not None:
            options["chat_template_kwargs"] = {"enable_thinking": args.thinking == "on"}
        if args.chat_template:
            options["chat_template"] = args.chat_template
        options["thinking_continuation"] = args.thinking_continuation
        if args.server_thinking_budget:
            options["thinking_budget"] = args.server_thinking_budget
        return options
    if args.chat_template or args.server_thinking_budget or args.thinking_continuation != "auto":
        raise ConfigError("--chat-template, --server-thinking-budget and --thinking-continuation are for a server "
                          "(--base-url); a local model renders its own template")
    if args.thinking is not None:
        options["enable_thinking"] = args.thinking == "on"
    return options


def add_thinking_tags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--thinking-tags``: the tags that mark a thinking in recorded text (``replay``, ``budget``)."""
    parser.add_argument("--thinking-tags", action="append", default=None, metavar="TAGS",
                        help="the tags around a thinking in recorded text: an opening tag ('<think>', "
                             "'<|begin_of_thought|>'; its closing tag is known or made with a slash), or 'OPEN CLOSE' "
                             "(a space between); repeatable; 'none': do not split text (default: <think>, "
                             "<|begin_of_thought|>, <thinking>, <reasoning>)")


def thinking_tags(args: argparse.Namespace) -> tuple[ThinkingTags, ...] | None:
    """The ``--thinking-tags`` as :class:`~interlock.monitor.phases.ThinkingTags` pairs; ``None`` for the default
    (the known pairs), ``()`` for ``none``."""
    values: list[str] | None = args.thinking_tags
    if not values:
        return None
    if [v.strip().lower() for v in values] == ["none"]:
        return ()
    pairs: list[ThinkingTags] = []
    for value in values:
        parts = value.split()
        if len(parts) == 1:
            pairs.append(ThinkingTags.parse(parts[0]))
        elif len(parts) == 2:
            pairs.append(ThinkingTags(parts[0], parts[1]))
        else:
            raise ConfigError(f"--thinking-tags {value!r}: give one tag ('<think>') or two ('<a> </a>'), or 'none'")
    return tuple(pairs)
