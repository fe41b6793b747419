"""``interlock run "PROMPT"``: a monitored generation, shown as it grows.

By default the embedded model (SmolLM2-135M-Instruct) generates and the verifiers that apply to the prompt check
it (``Verifier.applies_to``: ``arithmetic`` always, ``game24`` on a Game of 24 puzzle). The trace streams to the
terminal with verified steps in green, failed ones in red, text removed by a rollback struck through and the
injected feedback in yellow, then a one-line summary. Exit status: 0 when the run passed, 1 when it ended with a
violation or abstained, 2 on a usage or backend error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help="the question or task for the model")
    parser.add_argument("--model", metavar="PATH_OR_NAME",
                        help="a local model (folder written by save_pretrained, or a .gguf file); with "
                             "--openai-base-url, the server's model name (default: the embedded SmolLM2-135M)")
    parser.add_argument("--openai-base-url", metavar="URL",
                        help="generate with an OpenAI-compatible server, e.g. http://localhost:8000/v1 "
                             "(API key from $OPENAI_API_KEY)")
    parser.add_argument("--endpoint", choices=("chat", "completions"), default="chat",
                        help="with --openai-base-url: /v1/chat/completions or /v1/completions (default: chat)")
    parser.add_argument("--verifier", action="append", metavar="NAME", dest="verifiers",
                        help="a verifier by name (repeatable; see `interlock verifiers`); default: those whose "
                             "applies_to(prompt) says yes (arithmetic always, game24 on a Game of 24 puzzle); "
                             "'none' for no verifier")
    parser.add_argument("--max-tokens", type=int, default=512, metavar="N",
                        help="token budget: generated tokens, kept and discarded (default: 512)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 for greedy decoding (default)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default: 1.0)")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed (reproducible runs)")
    parser.add_argument("--system", default=None, help="a system message for chat models")
    parser.add_argument("--record", metavar="FILE", help="write the trace file (JSON Lines) to FILE")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (no live display)")


def _verifiers(names: list[str] | None, prompt: str) -> list[Any]:
    from interlock.monitor.errors import ConfigError
    from interlock.monitor.registry import applicable_verifiers, create_verifier, list_verifiers

    if names is None:
        return [create_verifier(n) for n in applicable_verifiers(prompt)]
    known = {info.name for info in list_verifiers()}
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown verifier {unknown[0]!r}; known: {', '.join(sorted(known)) or 'none'}")
    return [create_verifier(n) for n in names]


def _generator(args: argparse.Namespace) -> Any:
    from interlock.monitor.errors import ConfigError

    if args.openai_base_url:
        if not args.model:
            raise ConfigError("--openai-base-url needs --model NAME (the model name the server serves)")
        from interlock.generators.openai_compat import OpenAICompatible

        return OpenAICompatible(args.openai_base_url, args.model, endpoint=args.endpoint,
                                temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                                max_tokens=args.max_tokens, system_prompt=args.system)
    from interlock.generators.transformers import Transformers, default_model_path

    path = args.model if args.model else default_model_path()
    return Transformers(path, temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                        max_new_tokens=args.max_tokens, system=args.system)


async def _run(args: argparse.Namespace, generator: Any, verifiers: list[Any], live: bool) -> Any:
    try:
        return await _monitored(args, generator, verifiers, live)
    finally:
        aclose = getattr(generator, "aclose", None)  # the HTTP backend's client
        if aclose is not None:
            import anyio

            with anyio.move_on_after(5, shield=True):
                await aclose()


async def _monitored(args: argparse.Namespace, generator: Any, verifiers: list[Any], live: bool) -> Any:
    from interlock.monitor.cli.run_display import TraceDisplay
    from interlock.monitor.governors.budget import TokenBudget
    from interlock.monitor.monitor import Monitor

    monitor = Monitor(generator, verifiers=verifiers, governors=[TokenBudget(max_total=args.max_tokens)])
    display = TraceDisplay()
    if not live:
        return await monitor.run(args.prompt, record=args.record)
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=False)
    last = 0.0
    with Live(display.render(), console=console, auto_refresh=False, vertical_overflow="visible") as view:
        async with monitor.stream(args.prompt, record=args.record) as run:
            async for event in run:
                display.feed(event)
                now = time.perf_counter()
                if now - last > 0.05:
                    view.update(display.render(), refresh=True)
                    last = now
        view.update(display.render(), refresh=True)
    return run.result


def main(args: argparse.Namespace) -> int:
    import anyio
    from interlock.monitor.cli.run_display import summary_line
    from interlock.monitor.errors import ConfigError

    if args.max_tokens < 1:
        raise ConfigError(f"--max-tokens must be >= 1, got {args.max_tokens}")
    verifiers = _verifiers(args.verifiers, args.prompt)
    live = sys.stdout.isatty() and not args.json
    if live:
        names = ", ".join(v.name for v in verifiers) or "none"
        print(f"interlock: loading the model; verifiers: {names}", file=sys.stderr, flush=True)
    generator = _generator(args)
    result = anyio.run(_run, args, generator, verifiers, live)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    elif live:
        from rich.console import Console

        Console().print(summary_line(result), style="bold green" if result.passed else "bold red", highlight=False)
    else:
        print(result.text)
        print(summary_line(result))
    return 0 if result.passed else 1
