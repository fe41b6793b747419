"""Slow clients on real sockets: a request body that trickles in gets a 408 within ``body_timeout``; a client that
leaves mid-body is one quiet log line; 1,100 slow clients cannot exhaust the file descriptors of a proxy limited to
1,024 of them, so a normal request from the openai client still gets its answer, and the log stays small."""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import openai
import pytest
from interlock.generators import Scripted
from interlock.monitor.proxy import GeneratorBackend, ProxyConfig, create_app, free_port, serving

from tests.scripted_upstream import ScriptedUpstream, Turn

BODY = json.dumps({"model": "s", "messages": [{"role": "user", "content": "Say hi."}]}).encode()


def slow_request(path: str = "/v1/chat/completions", *, sent: int = 10, extra: str = "") -> bytes:
    """Headers announcing the whole body, and only its first ``sent`` bytes."""
    return (f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{extra}"
            f"content-length: {len(BODY)}\r\n\r\n").encode() + BODY[:sent]


def read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server writes until it closes the connection (or ``timeout`` passes: then what came)."""
    sock.settimeout(timeout)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        if not data:
            return out
        out += data
    raise AssertionError(f"the connection was still open after {timeout} s; it had sent {out[:200]!r}")


@pytest.fixture
def logs() -> Iterator[list[logging.LogRecord]]:
    """Every record of the uvicorn and interlock loggers during the test."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "interlock")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:
        yield records
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


def app() -> Any:
    return create_app(ProxyConfig(GeneratorBackend(Scripted(["Hi."]), model="s"), body_timeout=0.5))


async def test_a_body_that_trickles_in_gets_a_408_and_the_connection_is_closed() -> None:
    async with serving(app(), body_timeout=0.5) as url:
        port = int(url.rsplit(":", 1)[1])

        def ask() -> tuple[bytes, float]:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                started = time.monotonic()
                sock.sendall(slow_request())
                return read_all(sock, 10), time.monotonic() - started

        answer, seconds = await anyio.to_thread.run_sync(ask)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ") and b"connection: close" in head.lower()
    error = json.loads(body)["error"]
    assert (error["code"], error["message"]) == ("request_timeout",
                                                 "the request body did not arrive within 0.5 s (10 bytes had come)")
    assert 0.5 <= seconds < 5


async def test_a_route_that_never_reads_the_body_still_closes_a_trickling_connection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from interlock.monitor.proxy import h11_timeout

    monkeypatch.setattr(h11_timeout, "BODY_GRACE", 0.2)
    config = ProxyConfig(GeneratorBackend(Scripted(["Hi."]), model="s"), api_key="k", body_timeout=0.5)
    async with serving(create_app(config), body_timeout=0.5) as url:
        port = int(url.rsplit(":", 1)[1])

        def ask() -> tuple[bytes, float]:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                started = time.monotonic()
                sock.sendall(slow_request())  # no key: a 401 before the body is read
                return read_all(sock, 10), time.monotonic() - started

        answer, seconds = await anyio.to_thread.run_sync(ask)
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert 0.7 <= seconds < 5  # closed at body_timeout + grace, though the client would go on sending


async def test_a_client_that_leaves_mid_body_is_one_quiet_line(logs: list[logging.LogRecord]) -> None:
    async with serving(app(), body_timeout=5) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(slow_request())
            await anyio.sleep(0.3)
        with anyio.fail_after(5):
            while not any("left" in r.getMessage() for r in logs):
                await anyio.sleep(0.05)
        await anyio.sleep(0.3)  # room for a traceback, had there been one
    assert [r.getMessage() for r in logs if r.exc_info or "Exception" in r.getMessage()] == []
    (line,) = [json.loads(r.getMessage()) for r in logs]
    assert (line["event"], line["received"], line["level"]) == (
        "client left before its request body arrived", 10, "info")


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


@pytest.mark.slow
async def test_a_thousand_slow_clients_cannot_make_a_normal_request_fail(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1400:
        pytest.skip(f"this test holds 1,100 sockets; the hard file limit here is {hard}")
    if soft != resource.RLIM_INFINITY and soft < 1400:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    upstream = ScriptedUpstream(lambda body: Turn("So 2 + 2 = 4."))
    log = tmp_path / "proxy.log"
    slow: list[socket.socket] = []
    async with serving(upstream.app()) as up_url:
        port = free_port()
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "interlock", "proxy", "--base-url", up_url + "/v1",
                                     "--port", str(port), "-v", "arithmetic"], stdout=out, stderr=subprocess.STDOUT,
                                    preexec_fn=_limit_files, env={**os.environ, "OPENAI_API_KEY": ""})
        try:
            with anyio.fail_after(60):
                while True:
                    assert proc.poll() is None, log.read_text()
                    try:
                        async with httpx.AsyncClient(timeout=2) as http:
                            if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                                break
                    except httpx.TransportError:
                        await anyio.sleep(0.2)

            def open_slow_clients() -> None:
                for _ in range(1100):
                    sock = socket.create_connection(("127.0.0.1", port))
                    sock.sendall(slow_request(sent=1))
                    slow.append(sock)

            await anyio.to_thread.run_sync(open_slow_clients)
            await anyio.sleep(1.0)  # the proxy accepts them all
            async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0,
                                          timeout=20) as client:
                answer = await client.chat.completions.create(model="m", messages=[{"role": "user",
                                                                                    "content": "2 + 2?"}])
            assert answer.choices[0].message.content == "So 2 + 2 = 4."
            slow.pop().close()  # one leaves mid-body
            await anyio.sleep(0.5)
        finally:
            for sock in slow:
                sock.close()
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-6000:]
    assert text.count("out of file descriptors") <= 2, text[-3000:]
    assert log.stat().st_size < 20_000, text[-2000:]
