"""A restarted run, recorded and streamed (issue 24, item 11).

``record=`` keeps every attempt of a restarted run: the abandoned attempts' chunks and a ``restart`` event
before the next attempt, so the file reads back to the final text and nothing generated is lost. A streamed run
(``Monitor.stream``, the proxy) runs one attempt: a restart due there ends it with ``StopReason.RESTART``, outcome
``budget`` (never verified), and the proxy answers ``finish_reason: "length"``.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from interlock import Monitor, Outcome, StopReason, read_trace
from interlock.generators import Replay
from interlock.monitor.proxy import GeneratorBackend, ProxyConfig, create_app, serving
from interlock.monitor.replay.importers import read_traces

from tests.support import SumVerifier
from tests.test_restart import GOOD, LOOP, attempts, guard, ntok


async def test_the_trace_file_keeps_every_attempt(tmp_path: Path) -> None:
    path = tmp_path / "run.trace.jsonl"
    result = await Monitor(attempts(LOOP, GOOD), [SumVerifier()], [guard()]).run("Q?", record=path)
    (restart,) = result.restarts
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["type"] for r in lines].count("header") == 1 and lines[-1]["type"] == "end"
    chunks = "".join(r["text"] for r in lines if r["type"] == "chunk")
    assert chunks == restart.text + GOOD  # the first attempt's chunks are all there, then the second's
    (event,) = [r for r in lines if r["type"] == "event" and r["kind"] == "restart"]
    assert (event["attempt"], event["source"], event["prompt"]) == (1, "loop_guard", restart.prompt)
    assert event["state"] == restart.state and event["tokens"]["kept"] == ntok(restart.text)
    times = [r["t"] for r in lines if "t" in r]
    assert times == sorted(times)  # one clock for the whole file
    assert lines[-1]["text"] == GOOD and lines[-1]["tokens"]["discarded"] == ntok(restart.text)

    recorded = read_trace(path)
    assert recorded.text == restart.text + GOOD
    assert recorded.final_text() == GOOD
    assert recorded.prompt == "Q?" and recorded.final_prompt == restart.prompt
    assert [a["attempt"] for a in recorded.restarts] == [1]
    replay = Replay(path, speed=None)
    assert replay.text == GOOD and replay.prompt == restart.prompt
    (imported,) = read_traces(path)
    assert imported.text == GOOD and imported.prompt == restart.prompt


async def test_a_streamed_run_cannot_restart_and_is_not_verified() -> None:
    async with Monitor(attempts(LOOP, GOOD), [SumVerifier()], [guard()]).stream("Q?") as run:
        result = await run.wait(timeout=10)
    assert result.stop_reason is StopReason.RESTART
    assert result.outcome is Outcome.BUDGET and not result.passed
    assert result.detail.endswith("; a streamed run runs one attempt (Monitor.run restarts): stopped")


async def test_the_proxy_answers_a_restart_as_length_not_a_verified_stop() -> None:
    config = ProxyConfig(GeneratorBackend(attempts(LOOP, GOOD), model="scripted"), verifiers=[SumVerifier()],
                         governors=lambda _request: [guard()])
    async with serving(create_app(config)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post("/v1/chat/completions", json={
            "model": "scripted", "messages": [{"role": "user", "content": "Q?"}]})
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert response.headers["x-interlock-outcome"] == "budget"
    assert body["interlock"]["stop_reason"] == "restart" and body["interlock"]["passed"] is False
