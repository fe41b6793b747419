"""interlock proxy: the real openai client against the proxy served by uvicorn on loopback.

The backends here are deterministic (scripted generators) so that every assertion is about exact text: the
corrected answer, the steps a stream releases, the interventions reported, errors and limits.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import openai
import pytest
from interlock import Capabilities, Chunk, GenerationRequest, verifier
from interlock.generators import Scripted
from interlock.monitor.proxy import GeneratorBackend, ProxyConfig, create_app, serving

from tests.support import check_sums

sums = verifier(check_sums, name="sums")
sums_interrupt = verifier(check_sums, name="sums", action="interrupt")

WRONG_THEN_RIGHT = {
    "": "Tom has 12 apples.\nSo 12 + 7 = 18 apples.\nThe answer is 18.",
    "Let me redo this step.\n": "So 12 + 7 = 19 apples.\nThe answer is 19.",
}
CORRECTED = "Tom has 12 apples.\nSo 12 + 7 = 19 apples.\nThe answer is 19."
MESSAGES: Any = [{"role": "user", "content": "Tom has 12 apples and buys 7. How many?"}]


ClientFactory = Callable[..., openai.AsyncOpenAI]


@pytest.fixture
async def client_for() -> AsyncIterator[ClientFactory]:
    """Makes openai clients for a proxy URL and closes them at the end of the test."""
    made: list[openai.AsyncOpenAI] = []

    def make(url: str, key: str = "none") -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


def app_for(generator: Any, **options: Any) -> Any:
    options.setdefault("verifiers", [sums])
    return create_app(ProxyConfig(GeneratorBackend(generator, model="scripted"), **options))


async def collect(stream: Any) -> tuple[list[str], list[Any]]:
    pieces, chunks = [], []
    async for chunk in stream:
        chunks.append(chunk)
        if chunk.choices:
            choice = chunk.choices[0]
            text = choice.delta.content if hasattr(choice, "delta") else choice.text
            if text:
                pieces.append(text)
    return pieces, chunks


async def test_chat_answer_is_corrected_and_reports_the_intervention(client_for: ClientFactory) -> None:
    async with serving(app_for(Scripted(WRONG_THEN_RIGHT, rate=500))) as url:
        raw = await client_for(url).chat.completions.with_raw_response.create(model="scripted", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == CORRECTED
    assert completion.choices[0].finish_reason == "stop"
    assert raw.headers["x-interlock-interventions"] == "1"
    assert raw.headers["x-interlock-passed"] == "true"
    report = completion.model_extra["interlock"]
    assert report["passed"] is True and report["stop_reason"] == "complete"
    assert [(i["action"], i["source"], i["message"]) for i in report["interventions"]] == [
        ("rollback", "sums", "12 + 7 is 19, not 18")]
    assert report["interventions"][0]["removed_text"].startswith("So 12 + 7 = 18 apples.\n")
    assert raw.headers["x-interlock-run-id"] == report["run_id"] == completion.id.removeprefix("chatcmpl-")


async def test_stream_releases_only_verified_steps(client_for: ClientFactory) -> None:
    async with serving(app_for(Scripted(WRONG_THEN_RIGHT, rate=500))) as url:
        stream = await client_for(url).chat.completions.create(model="scripted", messages=MESSAGES, stream=True,
                                                               stream_options={"include_usage": True})
        pieces, chunks = await collect(stream)
    assert "".join(pieces) == CORRECTED
    assert not any("18" in p for p in pieces)  # the wrong step never reached the client
    assert all(p.endswith(("\n", ". ")) for p in pieces[:-1])  # released a step at a time
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    # the report rides on the last event, as the README says: here the usage chunk after the finish_reason one
    report = chunks[-1].model_extra["interlock"]
    assert [i["message"] for i in report["interventions"]] == ["12 + 7 is 19, not 18"]
    assert [c for c in chunks if "interlock" in (c.model_extra or {})] == [chunks[-1]]


async def test_feedback_can_be_shown(client_for: ClientFactory) -> None:
    async with serving(app_for(Scripted(WRONG_THEN_RIGHT), show_feedback=True)) as url:
        completion = await client_for(url).chat.completions.create(model="scripted", messages=MESSAGES)
    assert completion.choices[0].message.content == (
        "Tom has 12 apples.\nWait, 12 + 7 is 19, not 18. Let me redo this step.\n"
        "So 12 + 7 = 19 apples.\nThe answer is 19.")


async def test_completions_endpoint_streaming_and_not(client_for: ClientFactory) -> None:
    async with serving(app_for(Scripted(WRONG_THEN_RIGHT, rate=500))) as url:
        client = client_for(url)
        whole = await client.completions.create(model="scripted", prompt="Tom has 12 apples and buys 7.")
        pieces, chunks = await collect(await client.completions.create(model="scripted", prompt="Tom",
                                                                       stream=True))
    assert whole.choices[0].text == CORRECTED and whole.choices[0].finish_reason == "stop"
    assert whole.model_extra["interlock"]["interventions"][0]["source"] == "sums"
    assert "".join(pieces) == CORRECTED
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_interrupt_withholds_the_violating_step(client_for: ClientFactory) -> None:
    script = "Tom has 12 apples.\nSo 12 + 7 = 18 apples.\nThe answer is 18."
    async with serving(app_for(Scripted(script, rate=500), verifiers=[sums_interrupt])) as url:
        client = client_for(url)
        whole = await client.chat.completions.create(model="scripted", messages=MESSAGES)
        pieces, chunks = await collect(await client.chat.completions.create(model="scripted", messages=MESSAGES,
                                                                            stream=True))
    assert whole.choices[0].message.content == "Tom has 12 apples.\n"
    assert whole.choices[0].finish_reason == "content_filter"
    assert whole.model_extra["interlock"]["stop_reason"] == "interrupted"
    assert "".join(pieces) == "Tom has 12 apples.\n"
    assert chunks[-1].choices[0].finish_reason == "content_filter"


async def test_stop_strings_and_max_tokens(client_for: ClientFactory) -> None:
    async with serving(app_for(Scripted("One. Two. Three. Four."), verifiers=[])) as url:
        client = client_for(url)
        stopped = await client.chat.completions.create(model="s", messages=MESSAGES, stop=["Three"])
        short = await client.chat.completions.create(model="s", messages=MESSAGES, max_tokens=2)
    assert stopped.choices[0].message.content == "One. Two. "
    assert stopped.choices[0].finish_reason == "stop"
    assert short.choices[0].message.content == "One. Two."
    assert short.choices[0].finish_reason == "length"


async def test_bearer_token(client_for: ClientFactory) -> None:
    async with serving(app_for(Scripted("Fine."), api_key="s3cret")) as url:
        with pytest.raises(openai.AuthenticationError) as info:
            await client_for(url, "wrong").chat.completions.create(model="s", messages=MESSAGES)
        assert info.value.status_code == 401
        ok = await client_for(url, "s3cret").chat.completions.create(model="s", messages=MESSAGES)
        models = await client_for(url, "s3cret").models.list()
        async with httpx.AsyncClient() as http:
            health = await http.get(url + "/health")
    assert ok.choices[0].message.content == "Fine."
    assert [m.id for m in models.data] == ["scripted"]
    assert health.json() == {"status": "ok", "pid": os.getpid()}


async def test_bad_requests_name_the_field_and_limits_hold(client_for: ClientFactory) -> None:
    async with serving(app_for(Scripted("Fine."), max_body_bytes=2000)) as url:
        client = client_for(url)
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="s", messages=MESSAGES, n=2)
        assert info.value.body["param"] == "n"  # type: ignore[index]
        with pytest.raises(openai.BadRequestError, match="temperature must be a number between 0 and 2"):
            await client.chat.completions.create(model="s", messages=MESSAGES, temperature=5)
        async with httpx.AsyncClient() as http:
            big = await http.post(url + "/v1/chat/completions",
                                  json={"model": "s", "messages": [{"role": "user", "content": "x" * 5000}]})
            garbage = await http.post(url + "/v1/completions", content=b"{not json")
            no_messages = await http.post(url + "/v1/chat/completions", json={"model": "s", "messages": []})
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    assert garbage.status_code == 400 and "not valid JSON" in garbage.json()["error"]["message"]
    assert no_messages.status_code == 400 and no_messages.json()["error"]["param"] == "messages"


class Failing:
    """A backend that fails like an upstream server answering 429 before any text."""

    capabilities = Capabilities()

    class Upstream(Exception):
        status = 429
        server_message = "rate limited upstream"

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        raise self.Upstream("429 from upstream")
        yield Chunk("")  # pragma: no cover - makes this an async generator


async def test_upstream_error_status_is_passed_through(client_for: ClientFactory) -> None:
    async with serving(app_for(Failing(), start_within=5)) as url:  # the status is kept until the stream starts
        client = client_for(url)
        with pytest.raises(openai.RateLimitError) as whole:
            await client.chat.completions.create(model="s", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError) as streamed:
            await client.chat.completions.create(model="s", messages=MESSAGES, stream=True)
    assert whole.value.status_code == streamed.value.status_code == 429
    assert whole.value.body["message"] == "rate limited upstream"  # type: ignore[index]


async def test_request_time_limit(client_for: ClientFactory) -> None:
    slow = Scripted(["One step.\n", "Another", " step.\n", "A third", " step.\n"], rate=5)
    async with serving(app_for(slow, verifiers=[], request_timeout=0.3)) as url:
        client = client_for(url)
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="s", messages=MESSAGES)
        assert info.value.status_code == 504
        stream = await client.chat.completions.create(model="s", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError, match=r"longer than 0\.3 s"):
            await collect(stream)


class Numbered:
    """Answers a prompt ``task N`` with N's own steps; odd N first get a sum wrong and are rolled back."""

    capabilities = Capabilities(resumable=True)

    def __init__(self) -> None:
        self.open_streams = 0
        self.max_open = 0

    def answer(self, n: int) -> str:
        return f"Task {n} starts.\nSo {n} + 1 = {n + 1}.\nDone with {n}."

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        m = re.search(r"task (\d+)", request.prompt)
        assert m is not None
        n = int(m.group(1))
        if request.prefix.endswith("Let me redo this step.\n"):
            text = f"So {n} + 1 = {n + 1}.\nDone with {n}."
        elif n % 2:
            text = f"Task {n} starts.\nSo {n} + 1 = {n + 2}.\nDone with {n}."
        else:
            text = self.answer(n)
        self.open_streams += 1
        self.max_open = max(self.max_open, self.open_streams)
        try:
            for word in re.findall(r"\s*\S+|\s+", text):
                await anyio.sleep(0.002)
                yield Chunk(word)
        finally:
            self.open_streams -= 1


async def test_fifty_concurrent_streams_complete_with_none_lost(client_for: ClientFactory) -> None:
    gen = Numbered()
    results: dict[int, tuple[str, int, str]] = {}
    async with serving(app_for(gen)) as url:
        client = client_for(url)

        async def one(n: int) -> None:
            stream = await client.chat.completions.create(
                model="s", messages=[{"role": "user", "content": f"task {n}"}], stream=True)
            pieces, chunks = await collect(stream)
            final = chunks[-1]
            results[n] = ("".join(pieces), len(final.model_extra["interlock"]["interventions"]),
                          final.choices[0].finish_reason)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for n in range(50):
                    tg.start_soon(one, n)
    assert sorted(results) == list(range(50))
    for n in range(50):
        assert results[n] == (gen.answer(n), n % 2, "stop")
    assert gen.max_open > 10  # they really ran at the same time, on one event loop


class Endless:
    """Writes steps until cancelled; records that its stream was closed."""

    capabilities = Capabilities(resumable=True)

    def __init__(self) -> None:
        self.closed = anyio.Event()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        try:
            i = 0
            while True:
                await anyio.sleep(0.01)
                yield Chunk(f"Step {i}.\n")
                i += 1
        finally:
            self.closed.set()


async def test_client_disconnect_cancels_the_run() -> None:
    gen = Endless()
    async with serving(app_for(gen)) as url:
        async with httpx.AsyncClient(timeout=10) as http, http.stream(
                "POST", url + "/v1/chat/completions",
                json={"model": "s", "messages": MESSAGES, "stream": True}) as response:
            events = []
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                if len(events) >= 3:
                    break
        assert events[1]["choices"][0]["delta"]["content"].startswith("Step 0.\n")
        with anyio.fail_after(5):
            await gen.closed.wait()


async def test_hold_end_releases_once(client_for: ClientFactory) -> None:
    async with serving(app_for(Scripted(WRONG_THEN_RIGHT, rate=500), verifiers=[sums], hold="end")) as url:
        pieces, _ = await collect(await client_for(url).chat.completions.create(model="s", messages=MESSAGES,
                                                                                stream=True))
    assert pieces == [CORRECTED]


async def test_slow_checks_hold_text_back_until_they_pass(client_for: ClientFactory) -> None:
    @verifier(name="sums")
    async def slow_sums(step: Any) -> Any:
        await anyio.sleep(0.05)  # generation runs ahead of the checks
        return check_sums(step)

    script = {"": "Tom has 12 apples.\nHe buys more.\nSo 12 + 7 = 18 apples.\nThe answer is 18.\nThat is all.",
              "Let me redo this step.\n": "So 12 + 7 = 19 apples.\nThe answer is 19."}
    async with serving(app_for(Scripted(script, rate=1000), verifiers=[slow_sums])) as url:
        stream = await client_for(url).chat.completions.create(model="s", messages=MESSAGES, stream=True)
        pieces, chunks = await collect(stream)
    assert "".join(pieces) == "Tom has 12 apples.\nHe buys more.\nSo 12 + 7 = 19 apples.\nThe answer is 19."
    assert not any("18" in p or "That is all" in p for p in pieces)
    assert chunks[-1].model_extra["interlock"]["interventions"][0]["removed_text"].startswith(
        "So 12 + 7 = 18 apples.\n")
