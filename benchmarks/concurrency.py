"""Many concurrent monitored streams in one process: wall time and CPU against the same streams unmonitored, and
against interwhen on the same stream and check.

A local OpenAI-compatible server (raw asyncio, its own process, 127.0.0.1) streams the same clean step-by-step
arithmetic trace to every request, one word-sized chat delta (or, on ``/v1/completions``, one completion text) per
SSE event, at a fixed rate per stream. The client process opens ``--streams`` streams at once and reads them to the
end, in each variant:

- ``unmonitored``: ``generators.OpenAICompatible``'s stream read directly (the baseline);
- ``no_verifiers``: ``Monitor(gen).run`` (the token path: trace, governors, scheduling, no checks);
- ``arithmetic``: ``Monitor(gen, [Arithmetic()])`` (the ``arithmetic`` verifier), every step checked exactly;
- ``user_loop`` / ``user_thread`` / ``user_process``: a user's check written as interwhen's are (a regex for
  ``a op b = c`` and ``sympy.nsimplify``; ``--check``) as an ``@verifier``, on the event loop, in a thread, in a
  worker process;
- ``interwhen_unmonitored`` / ``interwhen_user``: interwhen's own ``stream_completion`` (``interwhen/interject.py``
  loaded from the checkout ``--interwhen PATH`` names, e.g. microsoft/interwhen at 2d041c2; skipped without it) on
  the same server and stream, without a monitor and with the same check in interwhen's monitor protocol.

Variants alternate in a rotating order, ``--repeats`` rounds. Every stream must complete with the full text (no
intervention), else the benchmark fails. Prints JSON: per variant the median wall seconds (and per round), the
ratio to ``unmonitored`` (``vs_unmonitored``) and to interwhen on the same stream and check (``vs_interwhen``, per
round against the same round), the CPU seconds of the client process (plus any check worker processes), the
server's CPU seconds, the garbage collector's seconds and collections, the checks per round and those undecided (a
check that timed out: the placement did not keep up); ``summary`` has the best placement of the user check, it
against interwhen, every placement against the best and ``arithmetic`` against the unmonitored read. At the fixed
rate an unmonitored client keeps up, so a wall ratio above 1 is the time the monitored client fell behind; on a
loaded machine the CPU ratio is the steadier figure.

    python benchmarks/concurrency.py [--streams 100] [--tokens 1414] [--rate 200] [--repeats 3]
                                     [--interwhen PATH] [--check nsimplify|nsimplify-both|blocking-100ms]
                                     [--variants unmonitored,no_verifiers,arithmetic,...]
                                     [--cpus 0,1 --server-cpus 2] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import importlib.util
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import sympy
from interlock import Fail, GenerationRequest, Monitor, Step, StopReason, Unknown, Verifier, verifier
from interlock.generators import OpenAICompatible
from interlock.monitor.scan import pseudo_tokens
from interlock.verifiers.arithmetic import Arithmetic

DEFAULT_VARIANTS = ("unmonitored", "no_verifiers", "arithmetic", "user_loop", "user_thread", "user_process",
                    "interwhen_unmonitored", "interwhen_user")
VARIANTS = DEFAULT_VARIANTS
PROMPT = "Add up the numbers step by step."


def make_trace(tokens: int) -> str:
    """Clean arithmetic steps (one line each) until the text has at least ``tokens`` word-sized pieces."""
    text = ""
    i = 0
    while len(list(pseudo_tokens(text))) < tokens:
        a, b = 3 + i % 17, 5 + i % 23
        text += f"Step {i + 1}: we add {a} and {b}, so {a} + {b} = {a + b}.\n"
        i += 1
    return text


# -- the user's check -------------------------------------------------------------------------------------

# What a user writes in interwhen's style: a regex for ``a op b = c`` and ``sympy.nsimplify``. The same function is
# the check of every interlock variant and of the interwhen monitor below, so both pay the same sympy. ``--check
# nsimplify`` (the default) reads the expression with nsimplify and the stated number exactly; ``nsimplify-both``
# reads both sides with nsimplify (each a parse of text: about twice the CPU, for a CPU-heavy check).
_CLAIM = re.compile(r"(\d+(?:\.\d+)?\s*[-+*/]\s*\d+(?:\.\d+)?)\s*=\s*(\d+(?:\.\d+)?)")
CHECKS = ("nsimplify", "nsimplify-both", "blocking-100ms")


def wrong_claim(text: str, check: str = "nsimplify") -> re.Match[str] | None:
    """The first ``a op b = c`` in ``text`` whose sides differ (exactly, as sympy sees them), or None.
    ``blocking-100ms``: first waits 100 ms without using the CPU (a solver or a service that takes its time)."""
    if check == "blocking-100ms" and _CLAIM.search(text):
        time.sleep(0.1)
    for m in _CLAIM.finditer(text):
        stated = sympy.nsimplify(m.group(2)) if check == "nsimplify-both" else sympy.Rational(m.group(2))
        if sympy.nsimplify(m.group(1)) != stated:
            return m
    return None


def _as_fail(step: Step, m: re.Match[str] | None) -> Fail | None:
    if m is None:
        return None
    return Fail(f"{m.group(1)} is not {m.group(2)}", span=step.to_trace(*m.span()))


def sympy_line_check(step: Step) -> Fail | None:
    """The interlock form of the check: a ``Fail`` with the claim's span."""
    return _as_fail(step, wrong_claim(step.text))


def sympy_both_sides_check(step: Step) -> Fail | None:
    """``--check nsimplify-both``: both sides read by nsimplify."""
    return _as_fail(step, wrong_claim(step.text, "nsimplify-both"))


def blocking_check(step: Step) -> Fail | None:
    """``--check blocking-100ms``: 100 ms of waiting, then the check."""
    return _as_fail(step, wrong_claim(step.text, "blocking-100ms"))


def user_check(runs_in: str, check: str = "nsimplify") -> Verifier:
    fn = {"nsimplify": sympy_line_check, "nsimplify-both": sympy_both_sides_check,
          "blocking-100ms": blocking_check}[check]
    made: Verifier = verifier(fn, name=f"sympy-lines-{runs_in}", runs_in=runs_in)  # type: ignore[arg-type]
    return made


def check_cost_us(text: str, check: str, repeats: int = 3) -> float:
    """Median CPU microseconds of one call of the check on a line of the trace (what every variant pays per
    check, before any dispatch; the 100 ms of ``blocking-100ms`` are waiting, not CPU)."""
    lines = text.splitlines(keepends=True)[:20 if check == "blocking-100ms" else None]
    per_round = []
    for _ in range(repeats):
        started = time.process_time()
        for line in lines:
            wrong_claim(line, check)
        per_round.append((time.process_time() - started) / len(lines) * 1e6)
    return round(statistics.median(per_round), 1)


# -- the server (its own process) -------------------------------------------------------------------------


def _event(text: str | None = None, finish: str | None = None, *, chat: bool = True) -> bytes:
    """One SSE event: a chat delta (``/chat/completions``) or a completion's text (``/completions``, what
    interwhen's ``stream_completion`` reads)."""
    choice: dict[str, Any]
    if chat:
        choice = {"index": 0, "delta": {"content": text} if text is not None else {}, "finish_reason": finish}
        obj = {"id": "c", "object": "chat.completion.chunk", "choices": [choice]}
    else:
        choice = {"index": 0, "text": text if text is not None else "", "finish_reason": finish}
        obj = {"id": "c", "object": "text_completion", "choices": [choice]}
    data = b"data: " + json.dumps(obj).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)  # one HTTP chunk per event


class _Paced:
    """One response being streamed: its events, when it started, how many have been written."""

    def __init__(self, writer: asyncio.StreamWriter, events: list[bytes], tail: list[bytes]) -> None:
        self.writer = writer
        self.events = events
        self.tail = tail
        self.start = time.perf_counter()
        self.sent = 0
        self.done = asyncio.get_running_loop().create_future()


class PacedServer:
    """Streams the trace to each request at ``rate`` events per second (event i at start + i / rate).

    One ticker writes what is due on every open stream, so the server's cost does not grow with a timer per
    event; HTTP/1.1 keep-alive with chunked bodies, like a real server. ``max_tokens`` in the body is honoured.
    """

    def __init__(self, text: str, rate: float, tick: float = 0.002) -> None:
        pieces = list(pseudo_tokens(text))
        self.events = {chat: [_event(p, chat=chat) for p in pieces] for chat in (True, False)}
        self.tails = {chat: [_event(finish="stop", chat=chat), _event_bytes(b"data: [DONE]\n\n"), b"0\r\n\r\n"]
                      for chat in (True, False)}
        self.rate = rate
        self.tick = tick
        self.open: set[_Paced] = set()

    async def main(self) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        ticker = asyncio.create_task(self._ticker())
        async with server:
            await server.serve_forever()
        ticker.cancel()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            now = time.perf_counter()
            for paced in list(self.open):
                due = min(len(paced.events), int((now - paced.start) * self.rate) + 1)
                if due > paced.sent:
                    paced.writer.write(b"".join(paced.events[paced.sent:due]))
                    paced.sent = due
                if paced.sent == len(paced.events):
                    paced.writer.write(b"".join(paced.tail))
                    self.open.discard(paced)
                    paced.done.set_result(None)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = json.loads(await reader.readexactly(length))
                chat = b"/chat/completions " in head.split(b"\r\n", 1)[0]
                events = self.events[chat]
                count = body.get("max_tokens") or len(events)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                paced = _Paced(writer, events[:count], self.tails[chat])
                self.open.add(paced)
                try:
                    await paced.done
                finally:
                    self.open.discard(paced)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def _event_bytes(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def serve(tokens: int, rate: float) -> None:
    asyncio.run(PacedServer(make_trace(tokens), rate).main())


# -- the client -------------------------------------------------------------------------------------------


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a live process, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            continue
        for kid in kids:
            out += [kid, *_children(kid)]
    return out


class GCTimer:
    """Seconds the client's garbage collector ran, and its collections per generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1

    def reading(self) -> tuple[float, list[int]]:
        return self.seconds, list(self.collections)


def _cpu_seconds(server_pid: int) -> tuple[float, float]:
    """CPU seconds so far of this process plus its check workers, and of the server."""
    total = time.process_time()
    server = 0.0
    for pid in _children(os.getpid()):
        if pid == server_pid:
            server = _proc_cpu(pid)
        else:
            total += _proc_cpu(pid)
    return total, server


async def _unmonitored(gen: OpenAICompatible) -> str:
    pieces = [chunk.text async for chunk in gen.stream(GenerationRequest(PROMPT))]
    return "".join(pieces)


CHECKS_SEEN = {"checks": 0, "undecided": 0}  # the verdicts of the monitored variants' runs, reset every round


def _monitored(monitor: Monitor) -> Callable[[OpenAICompatible], Awaitable[str]]:
    async def one(gen: OpenAICompatible) -> str:
        result = await monitor.run(PROMPT)
        if result.stop_reason is not StopReason.COMPLETE or result.interventions:
            raise AssertionError(f"a clean stream did not complete cleanly: {result.stop_reason} {result.detail}")
        CHECKS_SEEN["checks"] += len(result.verdicts)
        CHECKS_SEEN["undecided"] += sum(1 for v in result.verdicts if isinstance(v, Unknown))  # e.g. timed out
        return result.text
    return one


# -- interwhen, on the same server, stream and check (loaded from the user's checkout, never a dependency) ----


def load_interwhen(path: str) -> ModuleType:
    """``interwhen/interject.py`` of a checkout of microsoft/interwhen (the repository root, its ``interwhen``
    package folder, or the file itself)."""
    candidates = [Path(path), Path(path) / "interject.py", Path(path) / "interwhen" / "interject.py"]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise SystemExit(f"--interwhen {path}: no interwhen/interject.py there")
    spec = importlib.util.spec_from_file_location("interwhen_interject", found)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "stream_completion", None)):
        raise SystemExit(f"--interwhen {path}: {found} has no stream_completion")
    logging.getLogger(module.__name__).setLevel(logging.ERROR)  # it logs a banner per call; not its cost here
    return module


class InterwhenLineMonitor:
    """interwhen's monitor protocol (``step_extractor``, ``verify``, ``fix`` of its ``VerifyMonitor``) around the
    same check: a step is each line that a chunk completes; ``verify`` runs on the loop, as interwhen's do."""

    name = "sympy-lines"
    priority = 0

    def __init__(self, check: str = "nsimplify") -> None:
        self.check = check

    def step_extractor(self, chunk: str, generated_text: str) -> tuple[bool, str | None]:
        if "\n" not in chunk:
            return False, None
        before = len(generated_text) - len(chunk)
        start = generated_text.rfind("\n", 0, before) + 1
        return True, generated_text[start:generated_text.rfind("\n")]

    async def verify(self, step: str, token_index: int, event: asyncio.Event,
                     info: dict[str, Any]) -> tuple[str, str | None]:
        m = wrong_claim(step, self.check)
        if m is None:
            return step, None
        feedback = f"\n{m.group(1)} is not {m.group(2)}.\n"
        if not event.is_set():
            info.update(generated_text=step, feedback=feedback, correction_index=token_index)
            event.set()
        return step, feedback

    async def fix(self, generated_text: str, info: dict[str, Any], fix_method: Any = None) -> str:
        return str(info["generated_text"]) + str(info["feedback"])


class _Discard:
    """stdout while interwhen streams: it prints every chunk (flushing); kept off the terminal at no syscall."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _interwhen(module: ModuleType, base: str, monitors: list[Any]) -> Callable[[OpenAICompatible], Awaitable[str]]:
    async def one(gen: OpenAICompatible) -> str:
        server = {"url": f"{base}/completions", "headers": {"Content-Type": "application/json"},
                  "payload": {"model": gen.model, "stream": True, "max_tokens": gen.sampling.max_tokens}}
        return str(await module.stream_completion(PROMPT, llm_server=server, monitors=monitors))
    return one


def runner(variant: str, gen: OpenAICompatible, interwhen: ModuleType | None = None, base: str = "",
           check: str = "nsimplify") -> Callable[[OpenAICompatible], Awaitable[str]]:
    """How one stream of ``variant`` is read (a monitor is shared by the variant's concurrent runs)."""
    if variant == "unmonitored":
        return _unmonitored
    if variant.startswith("interwhen_"):
        assert interwhen is not None
        return _interwhen(interwhen, base, [InterwhenLineMonitor(check)] if variant == "interwhen_user" else [])
    verifiers: list[Verifier | str] = ([] if variant == "no_verifiers" else [Arithmetic()] if variant == "arithmetic"
                                       else [user_check(variant.removeprefix("user_"), check)])
    return _monitored(Monitor(gen, verifiers))


async def _round(streams: int, gen: OpenAICompatible, one: Callable[[OpenAICompatible], Awaitable[str]],
                 text: str) -> tuple[float, int]:
    """All streams at once; wall seconds and how many ended with the full text."""
    complete = 0

    async def stream() -> None:
        nonlocal complete
        if await one(gen) == text:
            complete += 1

    start = time.perf_counter()
    with anyio.fail_after(900), contextlib.redirect_stdout(_Discard()):  # type: ignore[type-var]
        async with anyio.create_task_group() as tg:
            for _ in range(streams):
                tg.start_soon(stream)
    return time.perf_counter() - start, complete


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    text = make_trace(args.tokens)
    pieces = len(list(pseudo_tokens(text)))
    if args.cpus:  # the client and its check workers on these cores only (e.g. 2, as a small serving box)
        os.sched_setaffinity(0, _cores(args.cpus))
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or "unmonitored" not in variants:
        raise SystemExit(f"--variants: unknown {unknown}; 'unmonitored' (the baseline) is required")
    interwhen = load_interwhen(args.interwhen) if args.interwhen else None
    skipped = [v for v in variants if v.startswith("interwhen_")] if interwhen is None else []
    variants = [v for v in variants if v not in skipped]
    command = [sys.executable, os.path.abspath(__file__), "--serve", "--tokens", str(args.tokens),
               "--rate", str(args.rate)]
    if args.server_cpus:
        command += ["--server-cpus", args.server_cpus]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        base = f"http://127.0.0.1:{port}/v1"
        limits = httpx.Limits(max_connections=args.streams + 8, max_keepalive_connections=args.streams + 8)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            gen = OpenAICompatible(base, "m", max_tokens=None, client=client, retries=0)
            # warm-up: open every connection, load sympy, start the check workers, at a few pieces a stream
            short = OpenAICompatible(base, "m", max_tokens=20, client=client, retries=0)
            for name in variants:
                await _round(args.streams, short, runner(name, short, interwhen, base, args.check), _prefix(text, 20))
            runners = {name: runner(name, gen, interwhen, base, args.check) for name in variants}
            rows: dict[str, dict[str, list[Any]]] = {v: {"wall": [], "cpu": [], "loop_cpu": [], "server_cpu": [],
                                                         "complete": [], "gc_s": [], "gc_collections": [], "checks": [],
                                                         "undecided": []} for v in variants}
            collector = GCTimer()
            for r in range(args.repeats):
                k = r % len(variants)
                for name in variants[k:] + variants[:k]:  # a rotating order: drift hits every variant alike
                    # the event loop thread's CPU time, not wall time: other threads and other processes do not
                    # count (a loaded machine would otherwise inflate whatever was running when it was descheduled)
                    profile = cProfile.Profile(time.thread_time) if args.profile else None
                    cpu0, srv0 = _cpu_seconds(server.pid)
                    loop0 = time.thread_time()
                    gc0, counts0 = collector.reading()
                    CHECKS_SEEN.update(checks=0, undecided=0)
                    if profile is not None:
                        profile.enable()
                    wall, complete = await _round(args.streams, gen, runners[name], text)
                    if profile is not None:
                        profile.disable()
                    loop1 = time.thread_time()
                    cpu1, srv1 = _cpu_seconds(server.pid)
                    gc1, counts1 = collector.reading()
                    if profile is not None:
                        os.makedirs(args.profile, exist_ok=True)
                        profile.dump_stats(os.path.join(args.profile, f"{name}.{r}.prof"))
                    if complete != args.streams:
                        raise AssertionError(f"{name}: only {complete} of {args.streams} streams had the full text")
                    row = rows[name]
                    row["wall"].append(wall)
                    row["cpu"].append(cpu1 - cpu0)
                    row["loop_cpu"].append(loop1 - loop0)
                    row["server_cpu"].append(srv1 - srv0)
                    row["complete"].append(complete)
                    row["gc_s"].append(gc1 - gc0)
                    row["checks"].append(CHECKS_SEEN["checks"])
                    row["undecided"].append(CHECKS_SEEN["undecided"])
                    row["gc_collections"].append([b - a for a, b in zip(counts0, counts1, strict=True)])
    finally:
        server.terminate()
        server.wait(10)
    out = {name: _variant_row(name, rows, args.streams) for name in rows}
    return {"benchmark": "concurrency", "command": " ".join(sys.argv), "streams": args.streams,
            "pieces_per_stream": pieces, "rate": args.rate, "ideal_wall_s": round(pieces / args.rate, 3),
            "repeats": args.repeats, "check": args.check,
            "check_cpu_us_per_call": check_cost_us(text, args.check), "checks_per_stream": len(text.splitlines()),
            "client_cores": sorted(os.sched_getaffinity(0)),
            "server_cores": args.server_cpus or "any", "cpu_count": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "skipped": {v: "no --interwhen PATH given" for v in skipped},
            "summary": _summary(out), "variants": out}


def _peer(name: str) -> str | None:
    """The interwhen variant a variant is compared with: the same read, the same check."""
    if name == "unmonitored":
        return "interwhen_unmonitored"
    if name.startswith("user_"):
        return "interwhen_user"
    return None


def _variant_row(name: str, rows: dict[str, dict[str, list[Any]]], streams: int) -> dict[str, Any]:
    row, base = rows[name], rows["unmonitored"]
    wall = statistics.median(row["wall"])
    out: dict[str, Any] = {
        "wall_s": round(wall, 3),
        "wall_s_per_round": [round(w, 3) for w in row["wall"]],
        "vs_unmonitored": round(wall / statistics.median(base["wall"]), 3),
        "vs_unmonitored_per_round": [round(w / b, 3) for w, b in zip(row["wall"], base["wall"], strict=True)],
    }
    peer = _peer(name)
    if peer is not None and peer in rows:
        out["vs_interwhen"] = round(wall / statistics.median(rows[peer]["wall"]), 3)
        out["vs_interwhen_per_round"] = [round(w / b, 3) for w, b in zip(row["wall"], rows[peer]["wall"],
                                                                         strict=True)]
    out.update({
        "cpu_s": round(statistics.median(row["cpu"]), 3),
        "loop_cpu_s": round(statistics.median(row["loop_cpu"]), 3),
        "cpu_vs_unmonitored": round(statistics.median(row["cpu"]) / statistics.median(base["cpu"]), 3),
        "server_cpu_s": round(statistics.median(row["server_cpu"]), 3),
        "gc_s": round(statistics.median(row["gc_s"]), 3),
        "gc_collections_per_generation": row["gc_collections"][len(row["gc_collections"]) // 2],
        "completions": int(sum(row["complete"])),
        "checks_per_round": row["checks"],
        "undecided_per_round": row["undecided"],  # Unknown verdicts (a check that timed out): it did not keep up
        "streams_run": streams * len(row["wall"]),
    })
    return out


def _summary(out: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's figures: the best placement of the user check against interwhen, each placement against the
    best, and ``arithmetic`` against the unmonitored read."""
    summary: dict[str, Any] = {}
    undecided = {name: sum(row["undecided_per_round"]) for name, row in out.items() if sum(row["undecided_per_round"])}
    if undecided:
        summary["undecided_checks"] = undecided  # a placement with these did not check everything: not comparable
    placements = {name: row["wall_s"] for name, row in out.items() if name.startswith("user_")}
    if placements:
        best = min(placements, key=placements.__getitem__)
        summary["best_placement"] = best
        summary["placements_vs_best"] = {name: round(w / placements[best], 3) for name, w in placements.items()}
        if "vs_interwhen" in out[best]:
            summary["best_vs_interwhen"] = out[best]["vs_interwhen"]
    if "arithmetic" in out:
        summary["arithmetic_vs_unmonitored"] = out["arithmetic"]["vs_unmonitored"]
    return summary


def _cores(spec: str) -> set[int]:
    return {int(c) for c in spec.split(",") if c.strip()}


def _prefix(text: str, pieces: int) -> str:
    return "".join(list(pseudo_tokens(text))[:pieces])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=1414, help="word-sized pieces per stream")
    parser.add_argument("--rate", type=float, default=200.0, help="pieces per second per stream")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    parser.add_argument("--check", choices=CHECKS, default="nsimplify",
                        help="the user check: nsimplify (the expression read by nsimplify, the stated number "
                             "exactly), nsimplify-both (both sides read by nsimplify: about twice the CPU) or "
                             "blocking-100ms (waits 100 ms per step, then nsimplify: a slow solver or service)")
    parser.add_argument("--interwhen", metavar="PATH",
                        help="a checkout of microsoft/interwhen (its interwhen/interject.py is loaded from there); "
                             "without it the interwhen variants are skipped")
    parser.add_argument("--cpus", help="pin the client (and its check workers) to these cores, e.g. 0,1")
    parser.add_argument("--server-cpus", help="pin the server to these cores, e.g. 2")
    parser.add_argument("--profile", metavar="DIR",
                        help="profile each round of the client's event loop thread (its CPU time) with cProfile "
                             "into DIR/VARIANT.ROUND.prof (the figures are then the profiled ones)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the server process
    args = parser.parse_args()
    if args.serve:
        if args.server_cpus:
            os.sched_setaffinity(0, _cores(args.server_cpus))
        serve(args.tokens, args.rate)
        return
    print(json.dumps(anyio.run(bench, args), indent=2))


if __name__ == "__main__":
    main()
