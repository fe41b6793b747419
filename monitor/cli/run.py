"""``interlock run "PROMPT"``: a monitored generation, shown as it grows.

By default the embedded model (SmolLM2-135M-Instruct) generates, the verifiers that apply to the prompt check
it (``Verifier.applies_to``: ``arithmetic`` always, ``game24`` on a Game of 24 puzzle) and a ``LoopGuard``
stops the model from repeating itself until the budget ends. On a terminal, finished lines are printed once
(verified green, failed red, removed text struck through, feedback yellow) and only the line being written is
redrawn, above a status line; into a pipe the same lines are printed plain, removed text between ``[-`` and
``-]``. Then one line with the outcome. Exit status (``Outcome.exit_code``): 0 verified or unchecked,
1 violation, 2 error (bad usage, the backend failed), 3 stopped by a budget or cut by the generator's limit,
4 undecided (a check could not decide about text still in the answer: never shown as verified).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
from typing import Any

from interlock.monitor.cli.options import (
    add_base_url,
    add_max_tokens,
    add_model,
    add_reasoning,
    add_verifiers,
    thinking_budget,
    thinking_generator_options,
)
from interlock.monitor.cli.otel import add_otel, traced
from interlock.monitor.cli.probe import add_probe, probe_generator_options, probe_governor

__all__ = ["add_arguments", "main"]

DEFAULT_MAX_TOKENS = 512


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help="the question or task for the model")
    add_model(parser, "a local model (folder written by save_pretrained, or a .gguf file); with --base-url, the "
                      "server's model name (default: the embedded SmolLM2-135M)")
    add_base_url(parser, "generate with an OpenAI-compatible server, e.g. http://localhost:8000/v1 "
                         "(API key from $OPENAI_API_KEY)")
    parser.add_argument("--endpoint", choices=("chat", "completions"), default="chat",
                        help="with --base-url: /v1/chat/completions or /v1/completions (default: chat)")
    parser.add_argument("--generator", metavar="MODULE:ATTR",
                        help="a generator from Python: an object with stream(request), or a function returning "
                             "one (e.g. a generators.Scripted for a demo or a test)")
    add_verifiers(parser, "a verifier by name (see `interlock verifiers`); default: those whose applies_to(prompt) "
                          "says yes (arithmetic always, game24 on a Game of 24 puzzle); 'none' for no verifier")
    add_max_tokens(parser, DEFAULT_MAX_TOKENS, "the run's total token budget: generated tokens, kept and discarded")
    parser.add_argument("--no-loop-guard", action="store_true",
                        help="do not stop the model when it repeats itself (the loop guard is on by default)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 for greedy decoding (default)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default: 1.0)")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed (reproducible runs)")
    parser.add_argument("--system", default=None, help="a system message for chat models")
    parser.add_argument("--record", metavar="FILE", help="write the trace file (JSON Lines) to FILE")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (no live display)")
    add_otel(parser)
    add_reasoning(parser)
    add_probe(parser)


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


def _from_python(spec: str) -> Any:
    from interlock.monitor.errors import ConfigError

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--generator takes MODULE:ATTR, got {spec!r}")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--generator {spec}: {exc}") from None
    generator = found if callable(getattr(found, "stream", None)) else found() if callable(found) else found
    if not callable(getattr(generator, "stream", None)):
        raise ConfigError(f"--generator {spec} is not a generator (no stream(request) method)")
    return generator


def _generator(args: argparse.Namespace, max_tokens: int) -> Any:
    from interlock.monitor.errors import ConfigError

    if args.generator:
        return _from_python(args.generator)
    if args.base_url:
        if not args.model:
            raise ConfigError("--base-url needs --model NAME (the model name the server serves)")
        from interlock.generators.openai_compat import OpenAICompatible

        return OpenAICompatible(args.base_url, args.model, endpoint=args.endpoint,
                                temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                                max_tokens=max_tokens, system_prompt=args.system,
                                **thinking_generator_options(args, http=True),  # type: ignore[arg-type]
                                **probe_generator_options(args))
    from interlock.generators.transformers import Transformers, default_model_path

    path = args.model if args.model else default_model_path()
    return Transformers(path, temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                        max_new_tokens=max_tokens, system=args.system,
                        **thinking_generator_options(args, http=False))  # type: ignore[arg-type]


def _governors(args: argparse.Namespace, max_tokens: int) -> list[Any]:
    from interlock.monitor.governors.budget import TokenBudget

    governors: list[Any] = [TokenBudget(max_total=max_tokens)]
    budget = thinking_budget(args)
    if budget is not None:
        governors.append(budget)
    probe = probe_governor(args)
    if probe is not None:
        governors.append(probe)
    if not args.no_loop_guard:
        from interlock.monitor.governors.loop_guard import LoopGuard

        governors.append(LoopGuard())
    return governors


def _meta(args: argparse.Namespace, generator: Any, verifiers: list[Any], governors: list[Any]) -> dict[str, Any]:
    """What the trace file's header records, so that a run can be understood and replayed later."""
    from interlock import __version__
    from interlock.monitor.urls import redact_url

    model = args.generator or args.model or ("" if args.base_url else "SmolLM2-135M-Instruct (embedded)")
    base_url = redact_url(args.base_url) if args.base_url else None  # a trace file never holds credentials
    return {"interlock_version": __version__, "model": model, "base_url": base_url,
            "generator": type(generator).__name__,
            "sampling": {"temperature": args.temperature, "top_p": args.top_p, "seed": args.seed},
            "verifiers": [_settings(v) for v in verifiers], "governors": [_settings(g) for g in governors]}


def _settings(obj: Any) -> dict[str, Any]:
    """A component's name and its plain settings (numbers, strings, booleans), as its constructor took them."""
    plain = {k: v for k, v in getattr(obj, "__dict__", {}).items()
             if not k.startswith("_") and isinstance(v, str | int | float | bool | type(None))}
    return {"name": getattr(obj, "name", type(obj).__name__), "class": type(obj).__name__, **plain}


async def _run(args: argparse.Namespace, generator: Any, verifiers: list[Any], max_tokens: int,
               live: bool) -> Any:
    try:
        return await _monitored(args, generator, verifiers, max_tokens, live)
    finally:
        aclose = getattr(generator, "aclose", None)  # the HTTP backend's client
        if aclose is not None:
            import anyio

            with anyio.move_on_after(5, shield=True):
                await aclose()


async def _monitored(args: argparse.Namespace, generator: Any, verifiers: list[Any], max_tokens: int,
                     live: bool) -> Any:
    from interlock.monitor.cli.run_display import TraceDisplay, plain
    from interlock.monitor.monitor import Monitor

    governors = _governors(args, max_tokens)
    monitor = Monitor(generator, verifiers=verifiers, governors=governors,
                      meta=_meta(args, generator, verifiers, governors))
    if args.json:
        return await monitor.run(args.prompt, record=args.record)
    display = TraceDisplay()
    if not live:
        written = "\n"
        async with monitor.stream(args.prompt, record=args.record) as run:
            async for event in run:
                display.feed(event)
                out = plain(display.take_committed())
                if out:
                    sys.stdout.write(out)
                    sys.stdout.flush()
                    written = out
        if not written.endswith("\n"):
            sys.stdout.write("\n")  # the summary line starts a line of its own
        return run.result
    return await _live(args, monitor, display, max_tokens)


async def _live(args: argparse.Namespace, monitor: Any, display: Any, max_tokens: int) -> Any:
    """Print committed lines once, above a small live region: the line being written and a status line."""
    import anyio
    from interlock.monitor.cli.run_display import status_line, styled
    from rich.console import Console, Group
    from rich.live import Live
    from rich.spinner import Spinner
    from rich.text import Text

    console = Console()

    def view(run: Any) -> Any:
        width, height = console.size
        rows = max(1, height - 3)
        tail = styled(display.live(max_chars=rows * max(width, 20)))
        lines = tail.wrap(console, width)
        shown = Text("\n").join(lines[-rows:]) if len(lines) else Text("")
        tokens = run.tokens
        status = status_line(tokens.kept, tokens.discarded, max_tokens,
                             len([i for i in run.interventions if i.applied]), run.elapsed, tokens.thinking)
        return Group(shown, Spinner("dots", Text(status, style="dim")))

    # What is printed while the live region is on screen ends at a newline: a line without one would share its
    # last row with the live region, which is redrawn over it and erased at the end (a last line wider than the
    # terminal lost its end, or kept a stale copy of the live line). A trailing partial line waits in `held` and
    # is printed, with its newline, once the live region is gone.
    held: list[tuple[str, str]] = []

    def print_lines(screen: Live) -> None:
        pieces = [*held, *display.take_committed()]
        held.clear()
        for k in range(len(pieces) - 1, -1, -1):
            text, kind = pieces[k]
            if "\n" in text:
                cut = text.rindex("\n") + 1
                held.extend([(text[cut:], kind), *pieces[k + 1:]])
                pieces = [*pieces[:k], (text[:cut], kind)]
                break
        else:
            held.extend(pieces)
            pieces = []
        if pieces:
            screen.console.print(styled(pieces), end="", soft_wrap=True, highlight=False)

    with Live(Text(""), console=console, auto_refresh=False, transient=True, vertical_overflow="crop") as screen:
        async with monitor.stream(args.prompt, record=args.record) as run:
            async def tick() -> None:
                while True:
                    screen.update(view(run), refresh=True)
                    await anyio.sleep(0.1)

            async with anyio.create_task_group() as tg:
                tg.start_soon(tick)
                async for event in run:
                    display.feed(event)
                    print_lines(screen)
                tg.cancel_scope.cancel()
        print_lines(screen)
    if any(text for text, _ in held):
        console.print(styled(held), soft_wrap=True, highlight=False)
    return run.result


def main(args: argparse.Namespace) -> int:
    import anyio
    from interlock.monitor.cli.options import chosen_verifiers, max_tokens
    from interlock.monitor.cli.run_display import OUTCOME_STYLES, summary_line
    from interlock.monitor.result import Outcome
    from interlock.monitor.stdio import own_stdout
    from interlock.monitor.textout import scrub

    budget = max_tokens(args)
    assert budget is not None
    verifiers = _verifiers(chosen_verifiers(args), args.prompt)
    live = sys.stdout.isatty() and not args.json
    names = ", ".join(v.name for v in verifiers) or "none (nothing will be checked)"
    if live:
        from interlock.generators.transformers.loading import loading_status
        from rich.console import Console

        # the spinner is all a load shows (a first run's conversion names itself in it; third-party progress bars
        # are off), then a line for what it did: converted, and cached where
        with Console(stderr=True).status(f"loading the model · verifiers: {names}", spinner="dots") as spinner, \
                loading_status(lambda doing: spinner.update(f"{doing} · verifiers: {names}"),
                               lambda done: spinner.console.print(done, soft_wrap=True, highlight=False,
                                                                  markup=False)):
            generator = _generator(args, budget)
        print(f"interlock: verifiers: {names}", file=sys.stderr, flush=True)
    else:
        generator = _generator(args, budget)
    # With --json, stdout holds the result alone: what a verifier prints goes to stderr (issue 24)
    with own_stdout() if args.json else contextlib.nullcontext(sys.stdout) as out:
        # (a reader that leaves is a BrokenPipeError, in the run's task group: main() stops quietly)
        with traced(args, "interlock"):
            result = anyio.run(_run, args, generator, verifiers, budget, live)
        if args.json:
            text, replaced = scrub(json.dumps(result.to_dict(), ensure_ascii=False))
            print(text, file=out)
    outcome: Outcome = result.outcome
    if args.json:
        if replaced:
            print(f"interlock run: {replaced} lone surrogate(s) in the result were written as U+FFFD",
                  file=sys.stderr)
    elif live:
        from rich.console import Console

        Console().print(summary_line(result), style=OUTCOME_STYLES[outcome][1], highlight=False, soft_wrap=True)
    else:
        print(summary_line(result))
    if outcome is Outcome.ERROR:
        print(f"interlock run: error: {result.detail or 'the run was cancelled'}", file=sys.stderr)
    return outcome.exit_code
