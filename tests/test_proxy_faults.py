"""The proxy under faults: clients that leave or stop reading, streams held back by slow checks, hostile bodies,
lone surrogates, unknown routes, an upstream that is down, requests whose headers never finish.

Every test here fails on the proxy as it was before these fixes (a whole answer kept generating for a client that
left, a request timeout with slow readers logged cancel-scope tracebacks, a held stream sent nothing at all, a
deep body got a 500, a lone surrogate a 500, an unknown route plain text, a slow header stayed open for good).
"""

from __future__ import annotations

import gc
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from interlock import Capabilities, Chunk, GenerationRequest, Step, verifier
from interlock.generators import Scripted
from interlock.monitor.proxy import GeneratorBackend, ProxyConfig, UpstreamBackend, create_app, free_port, serving

MESSAGES: Any = [{"role": "user", "content": "Go."}]


class Endless:
    """Writes steps until cancelled (``pause`` seconds apart); counts open streams, records closes."""

    capabilities = Capabilities(resumable=True)

    def __init__(self, pause: float = 0.01, text: str = "Step {i}.\n") -> None:
        self.pause = pause
        self.text = text
        self.closed = 0
        self.open = 0

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        self.open += 1
        try:
            i = 0
            while True:
                await anyio.sleep(self.pause)
                yield Chunk(self.text.format(i=i))
                i += 1
        finally:
            self.open -= 1
            self.closed += 1


def app_for(generator: Any, **options: Any) -> Any:
    return create_app(ProxyConfig(GeneratorBackend(generator, model="s"), **options))


async def test_a_whole_answer_whose_client_left_is_cancelled_and_frees_its_slot() -> None:
    gen = Endless()
    async with serving(app_for(gen, max_concurrent=1, request_timeout=60)) as url:
        async with httpx.AsyncClient(timeout=0.3) as http:
            with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection
                await http.post(url + "/v1/chat/completions", json={"model": "s", "messages": MESSAGES})
        with anyio.fail_after(5):  # generation stops at once (before: only at the 60 s request timeout)
            while gen.closed < 1:
                await anyio.sleep(0.01)
        assert gen.open == 0
        quick = Scripted(["Done.\n"])
        # the one slot is free again: a request behind it is answered (before: it waited for the timeout)
        async with serving(app_for(quick, max_concurrent=1)) as other, httpx.AsyncClient(timeout=10) as http:
            ok = await http.post(other + "/v1/chat/completions", json={"model": "s", "messages": MESSAGES})
        assert ok.status_code == 200
        async with httpx.AsyncClient(timeout=0.3) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(url + "/v1/chat/completions", json={"model": "s", "messages": MESSAGES})
        with anyio.fail_after(5):  # the same proxy's slot was free: the second request ran, and was cancelled
            while gen.closed < 2:
                await anyio.sleep(0.01)


async def test_slow_readers_at_the_request_timeout_leave_no_errors(caplog: pytest.LogCaptureFixture) -> None:
    gen = Endless(pause=0.0005, text="Step {i} " + "x" * 4000 + ".\n")  # fills socket buffers fast
    caplog.set_level(logging.ERROR)
    async with serving(app_for(gen, request_timeout=0.5)) as url:
        host, port = url.removeprefix("http://").split(":")
        body = json.dumps({"model": "s", "messages": MESSAGES, "stream": True}).encode()
        request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        readers = []
        for _ in range(4):  # clients that send a request and never read the answer
            s = socket.create_connection((host, int(port)))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(request)
            readers.append(s)
        with anyio.fail_after(20):
            while gen.closed < 4:  # every run was cancelled at its timeout
                await anyio.sleep(0.05)
        for s in readers:
            s.close()
        await anyio.sleep(0.2)
        gc.collect()
        await anyio.sleep(0.05)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert gen.open == 0


async def test_a_held_stream_starts_at_once_and_keeps_the_connection_alive() -> None:
    passing = anyio.Event()
    checked: list[str] = []

    @verifier(name="slow")
    async def slow(step: Step) -> None:
        await passing.wait()  # the check passes only when the test says so
        checked.append(step.text)

    gen = Scripted(["All good.\n"])
    async with serving(app_for(gen, verifiers=[slow], keepalive=0.05)) as url, \
            httpx.AsyncClient(timeout=10) as http, http.stream(
                "POST", url + "/v1/chat/completions",
                json={"model": "s", "messages": MESSAGES, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        seen: list[str] = []
        with anyio.fail_after(10):
            while seen.count(": keep-alive") < 2:  # the role chunk, then comments while the check runs
                line = await lines.__anext__()
                if line:
                    seen.append(line)
        assert json.loads(seen[0][6:])["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert checked == []  # all this came before the check passed
        passing.set()
        rest = [line async for line in lines if line.startswith("data: ")]
    contents = [json.loads(r[6:])["choices"][0]["delta"].get("content") for r in rest[:-1]
                if json.loads(r[6:]).get("choices")]
    assert "".join(c for c in contents if c) == "All good.\n"
    assert rest[-1] == "data: [DONE]"


async def test_hostile_bodies_get_a_400_naming_the_body() -> None:
    async with serving(app_for(Scripted(["x"]))) as url, httpx.AsyncClient(timeout=10) as http:
        deep = await http.post(url + "/v1/chat/completions", content=b"[" * 200_000 + b"]" * 200_000,
                               headers={"content-type": "application/json"})
        bad_utf8 = await http.post(url + "/v1/chat/completions", content=b'{"model": "\xff"}')
    assert deep.status_code == 400
    assert deep.json()["error"]["message"].startswith("the request body is nested too deeply to read")
    assert deep.json()["error"]["type"] == "invalid_request_error"
    assert bad_utf8.status_code == 400 and "not valid JSON" in bad_utf8.json()["error"]["message"]


async def test_lone_surrogates_are_written_as_replacement_characters() -> None:
    gen = Scripted(["Half a pair: \ud800 here.\n"])
    async with serving(app_for(gen)) as url, httpx.AsyncClient(timeout=10) as http:
        whole = await http.post(url + "/v1/chat/completions", json={"model": "s", "messages": MESSAGES})
        streamed = await http.post(url + "/v1/chat/completions",
                                   json={"model": "s", "messages": MESSAGES, "stream": True})
        echoed = await http.post(url + "/v1/chat/completions", content=b'{"model": "s", "messages": '
                                 b'[{"role": "user", "content": "\\ud800"}], "n": "\\udfff"}')
    assert whole.status_code == 200
    assert whole.json()["choices"][0]["message"]["content"] == "Half a pair: \ufffd here.\n"
    assert whole.json()["interlock"]["replaced"] == {"surrogates": 1}
    events = [json.loads(line[6:]) for line in streamed.text.split("\n") if line.startswith("data: {")]
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices")) == \
        "Half a pair: \ufffd here.\n"
    assert events[-1]["interlock"]["replaced"] == {"surrogates": 1}
    assert echoed.status_code == 400 and echoed.json()["error"]["param"] == "n"
    assert echoed.json()["error"]["message"].endswith("got '\\udfff'")


async def test_unknown_routes_methods_and_a_down_upstream_answer_openai_errors(
        caplog: pytest.LogCaptureFixture) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    caplog.set_level(logging.WARNING)
    async with serving(create_app(ProxyConfig(UpstreamBackend(down)))) as url, httpx.AsyncClient(timeout=10) as http:
        missing = await http.get(url + "/v2/nothing")
        method = await http.get(url + "/v1/chat/completions")
        models = await http.get(url + "/v1/models")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"
    assert missing.json()["error"]["code"] == "not_found"
    assert missing.json()["error"]["message"].startswith("no route /v2/nothing")
    assert method.status_code == 405 and method.json()["error"]["message"] == \
        "GET is not allowed on /v1/chat/completions"
    assert models.status_code == 502 and models.json()["error"]["code"] == "upstream_unavailable"
    assert models.json()["error"]["message"].startswith(f"the upstream {down} could not be reached: ConnectError")
    assert not any(r.exc_info for r in caplog.records)  # no traceback in the log


async def test_a_request_whose_headers_never_finish_is_closed() -> None:
    async with serving(app_for(Scripted(["x"])), header_timeout=0.3) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            s.settimeout(10)  # the test's own bound: before, the server kept it open for good
            started = time.monotonic()
            data = await anyio.to_thread.run_sync(s.recv, 100)
            assert data == b""  # the server closed the connection
            assert time.monotonic() - started < 10
        with socket.create_connection((host, int(port))) as idle:  # one that never sends a byte, likewise
            idle.settimeout(10)
            assert await anyio.to_thread.run_sync(idle.recv, 100) == b""


async def test_a_lone_surrogate_from_the_client_reaches_the_upstream_as_a_replacement_character() -> None:
    from tests.scripted_upstream import ScriptedUpstream, Turn

    upstream = ScriptedUpstream(lambda body: Turn("Read it."))
    async with serving(upstream.app()) as up_url:
        app = create_app(ProxyConfig(UpstreamBackend(up_url + "/v1")))
        async with serving(app) as url, httpx.AsyncClient(timeout=30) as http:
            response = await http.post(url + "/v1/chat/completions", content=b'{"model": "m", "messages": '
                                       b'[{"role": "user", "content": "half \\ud800 pair"}]}')
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "Read it."
    assert upstream.bodies[0]["messages"] == [{"role": "user", "content": "half \ufffd pair"}]
