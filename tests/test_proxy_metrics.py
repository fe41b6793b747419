"""``GET /metrics``: the Prometheus figures of what the proxy answered and what the monitor did."""

from __future__ import annotations

import sys
from typing import Any

import anyio
import httpx
import pytest
from interlock import verifier
from interlock.generators import Scripted
from interlock.monitor.proxy import GeneratorBackend, ProxyConfig, UpstreamBackend, create_app, free_port, serving
from prometheus_client.parser import text_string_to_metric_families

from tests.support import check_sums

sums = verifier(check_sums, name="sums", runs_in="loop")  # on the loop: the same tokens discarded every time
WRONG_THEN_RIGHT = {
    "": "Tom has 12 apples.\nSo 12 + 7 = 18 apples.\nThe answer is 18.",
    "Let me redo this step.\n": "So 12 + 7 = 19 apples.\nThe answer is 19.",
}
MESSAGES: Any = [{"role": "user", "content": "Tom has 12 apples and buys 7. How many?"}]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_count_requests_interventions_verdicts_tokens_and_holds() -> None:
    app = create_app(ProxyConfig(GeneratorBackend(Scripted(WRONG_THEN_RIGHT, rate=2000), model="s"),
                                 verifiers=[sums]))
    async with serving(app) as url, httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(url + "/v1/chat/completions", json={"model": "s", "messages": MESSAGES})
        whole = answer.json()
        await http.post(url + "/v1/chat/completions", json={"model": "s", "messages": MESSAGES, "stream": True})
        await http.post(url + "/v1/chat/completions", json={"model": "s"})  # 400
        page = await http.get(url + "/metrics")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    got = samples(page.text)
    # the outcome label says what x-interlock-outcome says (an Outcome), not a stop reason ("complete")
    assert answer.headers["x-interlock-outcome"] == whole["interlock"]["outcome"] == "verified"
    assert got[("interlock_proxy_requests_total", (("endpoint", "chat"), ("outcome", "verified"),
                                                   ("stream", "false")))] == 1
    assert got[("interlock_proxy_requests_total", (("endpoint", "chat"), ("outcome", "verified"),
                                                   ("stream", "true")))] == 1
    assert got[("interlock_proxy_requests_total", (("endpoint", "chat"), ("outcome", "400"),
                                                   ("stream", "unknown")))] == 1
    assert got[("interlock_proxy_interventions_total", (("action", "rollback"), ("source", "sums")))] == 2
    verdicts = whole["interlock"]["verdicts"]
    assert got[("interlock_proxy_verdicts_total", (("kind", "fail"), ("verifier", "sums")))] == 2 * verdicts["fail"]
    assert got[("interlock_proxy_verdicts_total", (("kind", "pass"), ("verifier", "sums")))] == 2 * verdicts["pass"]
    assert got[("interlock_proxy_check_seconds_count", (("verifier", "sums"),))] == 2 * sum(verdicts.values())
    tokens = whole["interlock"]["tokens"]
    assert got[("interlock_proxy_tokens_total", (("kind", "kept"),))] == 2 * tokens["kept"]
    assert got[("interlock_proxy_tokens_total", (("kind", "discarded"),))] == 2 * tokens["discarded"]
    assert got[("interlock_proxy_held_seconds_count", ())] >= 2
    assert got[("interlock_proxy_requests_in_flight", ())] == 0


async def test_metrics_count_upstream_errors() -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"
    backend = UpstreamBackend(down, options={"retries": 0})
    async with serving(create_app(ProxyConfig(backend))) as url, httpx.AsyncClient(timeout=60) as http:
        failed = await http.post(url + "/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
        page = await http.get(url + "/metrics")
    assert failed.status_code == 502
    got = samples(page.text)
    assert got[("interlock_proxy_upstream_errors_total", (("status", "none"),))] == 1
    assert got[("interlock_proxy_requests_total", (("endpoint", "chat"), ("outcome", "502"), ("stream", "false")))] == 1


async def test_without_prometheus_client_the_proxy_serves_and_metrics_say_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import prometheus_client raises ImportError
    app = create_app(ProxyConfig(GeneratorBackend(Scripted(WRONG_THEN_RIGHT, rate=2000), model="s"),
                                 verifiers=[sums]))
    async with serving(app) as url, httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(url + "/v1/chat/completions", json={"model": "s", "messages": MESSAGES})
        page = await http.get(url + "/metrics")
    assert answer.status_code == 200 and answer.json()["interlock"]["passed"] is True
    assert page.status_code == 501
    assert page.json()["error"]["message"] == "metrics need prometheus-client: pip install 'interlock[proxy]'"


async def test_metrics_need_the_api_key_when_one_is_set() -> None:
    app = create_app(ProxyConfig(GeneratorBackend(Scripted(WRONG_THEN_RIGHT, rate=2000), model="s"),
                                 verifiers=[sums], api_key="scrape-key"))
    async with serving(app) as url, httpx.AsyncClient(timeout=30) as http:
        anonymous = await http.get(url + "/metrics")
        wrong = await http.get(url + "/metrics", headers={"authorization": "Bearer nope"})
        scraper = await http.get(url + "/metrics", headers={"authorization": "Bearer scrape-key"})
        health = await http.get(url + "/health")  # load balancers' probe stays open; it says nothing
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.json()["error"]["code"] == "invalid_api_key"
    assert "interlock_proxy" not in anonymous.text
    assert scraper.status_code == 200 and "interlock_proxy_requests_in_flight" in scraper.text
    assert health.status_code == 200


async def test_client_chosen_tool_names_cannot_grow_the_metrics_page() -> None:
    """300 distinct tool names (150 declared by requests, 150 the upstream calls undeclared) and one of 100,000
    characters: the tool label keeps the operator's names and 32 declared ones; the rest fold into two values."""
    from tests.scripted_upstream import ScriptedUpstream, Turn

    def call_what_is_asked(body: dict[str, Any]) -> Turn:
        name = body["tools"][0]["function"]["name"] if body.get("tools") else body["messages"][0]["content"]
        return Turn("", [("call_1", name, {"amount": 1})])

    upstream = ScriptedUpstream(call_what_is_asked)
    names = [f"tool_{i}" for i in range(300)] + ["x" * 100_000]
    async with serving(upstream.app()) as up_url:
        config = ProxyConfig(UpstreamBackend(up_url + "/v1"), tool_verifiers={"transfer": [lambda a: None]},
                             max_interventions=0, max_body_bytes=1 << 20)
        async with serving(create_app(config)) as url, httpx.AsyncClient(timeout=60) as http:
            slots = anyio.Semaphore(8)

            async def ask(i: int, name: str) -> None:
                declared = i % 2 == 0 and len(name) <= 64
                body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": name}]}
                if declared:
                    body["tools"] = [{"type": "function", "function": {"name": name}}]
                async with slots:
                    answer = await http.post(url + "/v1/chat/completions", json=body)
                assert answer.status_code == 200
                report = answer.json()["interlock"]
                assert all(len(i["message"]) < 200 for i in report["interventions"])  # a long name is cut short
                released = "tool_calls" in answer.json()["choices"][0]["message"]
                assert released is declared

            async with anyio.create_task_group() as tg:
                for i, name in enumerate(names):
                    tg.start_soon(ask, i, name)
            page = (await http.get(url + "/metrics")).text
    tools = {s.labels["tool"] for f in text_string_to_metric_families(page) for s in f.samples
             if s.name == "interlock_proxy_tool_calls_total"}
    assert len(tools) == 32 + 2 and {"(other)", "(undeclared)"} <= tools  # metrics.MAX_REQUEST_TOOLS + 2
    assert all(len(label) <= 64 for f in text_string_to_metric_families(page) for s in f.samples
               for label in s.labels.values())
    assert len(page) < 24_000
