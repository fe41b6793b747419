"""``interlock proxy --workers 2``: two processes behind one port in front of an upstream, each monitoring the
requests it accepts, with the Prometheus figures of both added up on /metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import anyio
import httpx
from interlock.monitor.proxy import free_port, serving
from prometheus_client.parser import text_string_to_metric_families

from tests.scripted_upstream import ScriptedUpstream, Turn


async def test_two_workers_behind_one_port_share_their_metrics() -> None:
    upstream = ScriptedUpstream(lambda body: Turn("So 2 + 2 = 4.\nDone."))
    async with serving(upstream.app()) as up_url:
        port = free_port()
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": ""}
        proc = subprocess.Popen([sys.executable, "-m", "interlock", "proxy", "--base-url", up_url + "/v1",
                                 "--port", str(port), "--workers", "2", "--verifier", "arithmetic"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            pids: set[int] = set()
            with anyio.fail_after(90):
                while len(pids) < 2:  # new connections land on either worker
                    try:
                        async with httpx.AsyncClient(timeout=5) as http:
                            pids.add((await http.get(url + "/health")).json()["pid"])
                    except httpx.TransportError:
                        assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")
                        await anyio.sleep(0.2)
            assert proc.pid not in pids
            answers: list[Any] = []

            async def ask() -> None:
                async with httpx.AsyncClient(timeout=30) as http:
                    answers.append((await http.post(url + "/v1/chat/completions", json={
                        "model": "m", "messages": [{"role": "user", "content": "2 + 2?"}]})).json())

            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(ask)
            assert [a["choices"][0]["message"]["content"] for a in answers] == ["So 2 + 2 = 4.\nDone."] * 6
            async with httpx.AsyncClient(timeout=10) as http:
                page = (await http.get(url + "/metrics")).text
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                output = proc.communicate(timeout=30)[0].decode(errors="replace")
            except subprocess.TimeoutExpired:
                proc.kill()
                output = proc.communicate()[0].decode(errors="replace")
    totals = {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(page)
              for s in f.samples if s.name == "interlock_proxy_requests_total"}
    assert totals[(("endpoint", "chat"), ("outcome", "verified"), ("stream", "false"))] == 6
    assert "with 2 workers" in output
    assert "Traceback" not in output


async def test_a_killed_workers_request_stops_counting_as_in_flight(tmp_path: Any) -> None:
    """A worker SIGKILLed mid-answer never lowers its own in-flight gauge: the supervisor that replaces it does.
    The base URL carries credentials, which the workers' banner must not show."""
    upstream = ScriptedUpstream(lambda body: Turn("word " * 200, delay=0.2))
    async with serving(upstream.app()) as up_url:
        port = free_port()
        scheme, rest = (up_url + "/v1").split("://", 1)
        base_url = f"{scheme}://alice:pa55-word-Zq81@{rest}?api-key=sk-secret-key-1234"
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
        proc = subprocess.Popen([sys.executable, "-m", "interlock", "proxy", "--base-url", base_url,
                                 "--port", str(port), "--workers", "2", "-v", "none"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"

        async def in_flight() -> float:
            async with httpx.AsyncClient(timeout=5) as http:
                page = (await http.get(url + "/metrics")).text
            return sum(s.value for f in text_string_to_metric_families(page) for s in f.samples
                       if s.name == "interlock_proxy_requests_in_flight")

        try:
            pids: set[int] = set()
            with anyio.fail_after(90):
                while len(pids) < 2:
                    try:
                        async with httpx.AsyncClient(timeout=5) as http:
                            pids.add((await http.get(url + "/health")).json()["pid"])
                    except httpx.TransportError:
                        assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")
                        await anyio.sleep(0.2)
            broken: list[BaseException] = []

            async def long_answer() -> None:
                try:
                    async with httpx.AsyncClient(timeout=60) as http, http.stream(
                            "POST", url + "/v1/chat/completions",
                            json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "Go."}]}
                    ) as response:
                        async for _ in response.aiter_bytes():
                            pass
                except httpx.TransportError as exc:
                    broken.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(long_answer)
                with anyio.fail_after(20):
                    while await in_flight() != 1:
                        await anyio.sleep(0.1)
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                with anyio.fail_after(30):  # the supervisor starts new workers and forgets the dead ones
                    while True:
                        try:
                            if await in_flight() == 0:
                                break
                        except httpx.TransportError:
                            pass
                        await anyio.sleep(0.2)
            assert broken, "the answer in flight died with its worker"
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                output = proc.communicate(timeout=30)[0].decode(errors="replace")
            except subprocess.TimeoutExpired:
                proc.kill()
                output = proc.communicate()[0].decode(errors="replace")
    assert f"with 2 workers -> upstream http://***@{rest.split('/')[0]}/v1?api-key=***; " in output
    assert "pa55-word" not in output and "sk-secret" not in output
