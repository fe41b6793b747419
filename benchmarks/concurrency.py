"""Many concurrent monitored streams in one process: wall time and CPU against the same streams unmonitored.

A local OpenAI-compatible server (raw asyncio, its own process, 127.0.0.1) streams the same clean step-by-step
arithmetic trace to every request, one word-sized chat delta per SSE event, at a fixed rate per stream. The
client process opens ``--streams`` streams at once through ``generators.OpenAICompatible`` (one shared HTTP
client, a connection per stream) and reads them to the end, in each variant:

- ``unmonitored``: the generator's stream read directly (the baseline);
- ``no_verifiers``: ``Monitor(gen).run`` (the token path: trace, governors, scheduling, no checks);
- ``arithmetic``: ``Monitor(gen, [Arithmetic()])`` (the ``arithmetic`` verifier), every step checked exactly;
- ``user_loop`` / ``user_thread`` / ``user_process``: a user's sympy line check (``@verifier``) run on the
  event loop, in a thread, in a worker process.

Variants alternate in a rotating order, ``--repeats`` rounds. Every stream must complete with the full text
(no intervention), else the benchmark fails. Prints JSON: per variant the median wall seconds, the wall ratio
to ``unmonitored`` (medians; also per round against that round's baseline), the CPU seconds of the client
process (plus any check worker processes) and their ratio to ``unmonitored``, the server's CPU seconds, and the
completions. At the fixed rate an unmonitored client keeps up, so a wall ratio above 1 is the time the
monitored client fell behind; on a loaded machine the CPU ratio is the steadier figure.

    python benchmarks/concurrency.py [--streams 100] [--tokens 1414] [--rate 200] [--repeats 3]
                                     [--variants unmonitored,no_verifiers,arithmetic,...]
                                     [--cpus 0,1 --server-cpus 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import sympy
from interlock import Fail, GenerationRequest, Monitor, Step, StopReason, Verifier, verifier
from interlock.generators import OpenAICompatible
from interlock.monitor.scan import pseudo_tokens
from interlock.verifiers.arithmetic import Arithmetic

VARIANTS = ("unmonitored", "no_verifiers", "arithmetic", "user_loop", "user_thread", "user_process")
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

_LINE = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")
_OPS: dict[str, Callable[[Any, Any], Any]] = {"+": operator.add, "-": operator.sub, "*": operator.mul,
                                               "/": operator.truediv}


def sympy_line_check(step: Step) -> Fail | None:
    """What a user writes: each ``a op b = c`` in the step, checked exactly with sympy (no eval of model text)."""
    for m in _LINE.finditer(step.text):
        a, op, b, c = m.groups()
        lhs = _OPS[op](sympy.Integer(a), sympy.Integer(b))
        if sympy.simplify(lhs - sympy.Integer(c)) != 0:
            return Fail(f"{a} {op} {b} is {lhs}, not {c}", span=step.to_trace(*m.span()))
    return None


def user_check(runs_in: str) -> Verifier:
    check: Verifier = verifier(sympy_line_check, name=f"sympy-lines-{runs_in}", runs_in=runs_in)  # type: ignore[arg-type]
    return check


# -- the server (its own process) -------------------------------------------------------------------------


def _event(text: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text is not None else {}
    obj = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta,
                                                                      "finish_reason": finish}]}
    data = b"data: " + json.dumps(obj).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)  # one HTTP chunk per event


class _Paced:
    """One response being streamed: its events, when it started, how many have been written."""

    def __init__(self, writer: asyncio.StreamWriter, events: list[bytes]) -> None:
        self.writer = writer
        self.events = events
        self.start = time.perf_counter()
        self.sent = 0
        self.done = asyncio.get_running_loop().create_future()


class PacedServer:
    """Streams the trace to each request at ``rate`` events per second (event i at start + i / rate).

    One ticker writes what is due on every open stream, so the server's cost does not grow with a timer per
    event; HTTP/1.1 keep-alive with chunked bodies, like a real server. ``max_tokens`` in the body is honoured.
    """

    def __init__(self, text: str, rate: float, tick: float = 0.002) -> None:
        self.events = [_event(p) for p in pseudo_tokens(text)]
        self.tail = [_event(finish="stop"), _event_bytes(b"data: [DONE]\n\n"), b"0\r\n\r\n"]
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
                    paced.writer.write(b"".join(self.tail))
                    self.open.discard(paced)
                    paced.done.set_result(None)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = json.loads(await reader.readexactly(length))
                count = body.get("max_tokens") or len(self.events)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                paced = _Paced(writer, self.events[:count])
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


def _monitored(monitor: Monitor) -> Callable[[OpenAICompatible], Awaitable[str]]:
    async def one(gen: OpenAICompatible) -> str:
        result = await monitor.run(PROMPT)
        if result.stop_reason is not StopReason.COMPLETE or result.interventions:
            raise AssertionError(f"a clean stream did not complete cleanly: {result.stop_reason} {result.detail}")
        return result.text
    return one


def runner(variant: str, gen: OpenAICompatible) -> Callable[[OpenAICompatible], Awaitable[str]]:
    """How one stream of ``variant`` is read (a monitor is shared by the variant's concurrent runs)."""
    if variant == "unmonitored":
        return _unmonitored
    verifiers: list[Verifier | str] = {
        "no_verifiers": [], "arithmetic": [Arithmetic()], "user_loop": [user_check("loop")],
        "user_thread": [user_check("thread")], "user_process": [user_check("process")]}[variant]
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
    with anyio.fail_after(600):
        async with anyio.create_task_group() as tg:
            for _ in range(streams):
                tg.start_soon(stream)
    return time.perf_counter() - start, complete


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    text = make_trace(args.tokens)
    pieces = len(list(pseudo_tokens(text)))
    if args.cpus:  # the client and its check workers on these cores only (e.g. 2, as a small serving box)
        os.sched_setaffinity(0, _cores(args.cpus))
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
            variants = [v for v in args.variants.split(",") if v]
            unknown = sorted(set(variants) - set(VARIANTS))
            if unknown or "unmonitored" not in variants:
                raise SystemExit(f"--variants: unknown {unknown}; 'unmonitored' (the baseline) is required")
            # warm-up: open every connection, load sympy, start the check workers, at a few pieces a stream
            short = OpenAICompatible(base, "m", max_tokens=20, client=client, retries=0)
            for name in variants:
                await _round(args.streams, short, runner(name, short), _prefix(text, 20))
            runners = {name: runner(name, gen) for name in variants}
            rows: dict[str, dict[str, list[float]]] = {v: {"wall": [], "cpu": [], "server_cpu": [], "complete": []}
                                                       for v in variants}
            for r in range(args.repeats):
                k = r % len(variants)
                for name in variants[k:] + variants[:k]:  # a rotating order: drift hits every variant alike
                    cpu0, srv0 = _cpu_seconds(server.pid)
                    wall, complete = await _round(args.streams, gen, runners[name], text)
                    cpu1, srv1 = _cpu_seconds(server.pid)
                    if complete != args.streams:
                        raise AssertionError(f"{name}: only {complete} of {args.streams} streams had the full text")
                    row = rows[name]
                    row["wall"].append(wall)
                    row["cpu"].append(cpu1 - cpu0)
                    row["server_cpu"].append(srv1 - srv0)
                    row["complete"].append(complete)
    finally:
        server.terminate()
        server.wait(10)
    base_wall = statistics.median(rows["unmonitored"]["wall"])
    base_cpu = statistics.median(rows["unmonitored"]["cpu"])
    out: dict[str, Any] = {}
    for name, row in rows.items():
        wall = statistics.median(row["wall"])
        out[name] = {
            "wall_s": round(wall, 3),
            "wall_ratio": round(wall / base_wall, 3),
            "wall_ratio_per_round": [round(w / b, 3) for w, b in zip(row["wall"], rows["unmonitored"]["wall"],
                                                                     strict=True)],
            "cpu_s": round(statistics.median(row["cpu"]), 3),
            "cpu_ratio": round(statistics.median(row["cpu"]) / base_cpu, 3),
            "server_cpu_s": round(statistics.median(row["server_cpu"]), 3),
            "completions": int(sum(row["complete"])),
            "streams_run": args.streams * len(row["wall"]),
        }
    return {"benchmark": "concurrency", "streams": args.streams, "pieces_per_stream": pieces, "rate": args.rate,
            "ideal_wall_s": round(pieces / args.rate, 3), "repeats": args.repeats,
            "client_cores": sorted(os.sched_getaffinity(0)), "server_cores": args.server_cpus or "any",
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()], "variants": out}


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
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--cpus", help="pin the client (and its check workers) to these cores, e.g. 0,1")
    parser.add_argument("--server-cpus", help="pin the server to these cores, e.g. 2")
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
