"""interlock proxy in front of real backends: an OpenAI-compatible upstream reached through
``generators.OpenAICompatible`` (another server on loopback, and ``transformers serve`` in the slow test), and a
local transformers model in process. The client is the real ``openai`` package throughout."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from interlock import Capabilities, Chunk, GenerationRequest, Monitor, verifier
from interlock.monitor.proxy import GeneratorBackend, ProxyConfig, UpstreamBackend, create_app, serving

import tests.test_openai_compat_serve as serve_tests
import tests.test_proxy as proxy_tests
import tests.tiny_model as tiny
from tests.support import check_sums

# fixtures shared with the generator tests: the tiny model's folder, `transformers serve` running it, and the
# same model loaded here for the expected greedy texts
tiny_model_dir = tiny.tiny_model_dir
served = serve_tests.served
local = serve_tests.local
MAX_TOKENS = serve_tests.MAX_TOKENS
greedy = serve_tests.greedy

sums = verifier(check_sums, name="sums")
FEEDBACK_END = "Let me redo this step.\n"
CORRECTED = "Tom has 12 apples.\nSo 12 + 7 = 19 apples.\nThe answer is 19."
MESSAGES: Any = [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "Tom has 12 apples and buys 7. How many?"}]


class SlipsOnce:
    """A plain model behind the upstream server: it gets the sum wrong unless the text it continues ends with the
    monitor's feedback. It sees only prompt + prefix, as a real server's model does."""

    capabilities = Capabilities(resumable=True)

    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        full = request.prompt + request.prefix
        self.prompts.append(full)
        if full.endswith(FEEDBACK_END):
            text = "So 12 + 7 = 19 apples.\nThe answer is 19."
        else:
            text = "Tom has 12 apples.\nSo 12 + 7 = 18 apples.\nThe answer is 18."
        for word in text.split(" "):
            yield Chunk(word if word == text.split(" ")[-1] else word + " ")


Factory = Callable[..., openai.AsyncOpenAI]
client_for = proxy_tests.client_for  # fixture: openai clients closed at the end of each test


def upstream_app(model: Any, **options: Any) -> Any:
    """A plain OpenAI-compatible server (an interlock proxy that monitors nothing)."""
    return create_app(ProxyConfig(GeneratorBackend(model, model="upstream-model"), **options))


async def test_violations_from_an_upstream_server_are_corrected(client_for: Factory) -> None:
    model = SlipsOnce()
    async with serving(upstream_app(model)) as upstream:
        front = create_app(ProxyConfig(UpstreamBackend(upstream + "/v1"), verifiers=[sums]))
        async with serving(front) as url:
            client = client_for(url)
            chat = await client.chat.completions.create(model="upstream-model", messages=MESSAGES)
            pieces = []
            stream = await client.completions.create(model="upstream-model", prompt="Q: apples?\nA: ", stream=True)
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].text:
                    pieces.append(chunk.choices[0].text)
            models = await client.models.list()
    assert chat.choices[0].message.content == CORRECTED
    assert [i["message"] for i in chat.model_extra["interlock"]["interventions"]] == ["12 + 7 is 19, not 18"]
    assert "".join(pieces) == CORRECTED
    assert [m.id for m in models.data] == ["upstream-model"]
    # the rollback reached the upstream as a continuation of the cut answer plus the feedback
    assert any(p.endswith("Tom has 12 apples.\nWait, 12 + 7 is 19, not 18. " + FEEDBACK_END) for p in model.prompts)
    assert model.prompts[0] == "System: Be brief.\n\nUser: Tom has 12 apples and buys 7. How many?\n\nAssistant:"


async def test_a_conversation_reaches_the_upstream_whole(client_for: Factory) -> None:
    model = SlipsOnce()
    conversation: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Hello!"},
                         {"role": "user", "content": "Tom has 12 apples and buys 7. How many?"}]
    async with serving(upstream_app(model)) as upstream:
        front = create_app(ProxyConfig(UpstreamBackend(upstream + "/v1"), verifiers=[sums]))
        async with serving(front) as url:
            chat = await client_for(url).chat.completions.create(model="upstream-model", messages=conversation)
    assert chat.choices[0].message.content == CORRECTED
    history = "System: Be brief.\n\nUser: Hi\n\nAssistant: Hello!\n\nUser: Tom has 12 apples and buys 7. How many?"
    assert model.prompts[0] == history + "\n\nAssistant:"
    # the rollback: the same conversation, then the cut answer with the feedback as the message to continue
    assert model.prompts[1] == (history + "\n\nAssistant:Tom has 12 apples.\nWait, 12 + 7 is 19, not 18. "
                                + FEEDBACK_END)


async def test_upstream_errors_keep_their_status(client_for: Factory) -> None:
    async with serving(upstream_app(SlipsOnce(), api_key="upstream-secret", max_body_bytes=600)) as upstream:
        no_key = create_app(ProxyConfig(UpstreamBackend(upstream + "/v1", model="upstream-model"), verifiers=[sums]))
        # a stream's status is decided when generation begins or start_within has passed: wait long enough
        # for the upstream's error even on a loaded machine
        keyed = create_app(ProxyConfig(UpstreamBackend(upstream + "/v1", model="upstream-model",
                                                       api_key="upstream-secret"), verifiers=[sums], start_within=10))
        async with serving(no_key) as url, serving(keyed) as keyed_url:
            with pytest.raises(openai.AuthenticationError) as denied:
                await client_for(url).chat.completions.create(model="m", messages=MESSAGES)
            with pytest.raises(openai.APIStatusError) as too_big:
                await client_for(keyed_url).chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "x" * 2000}], stream=True)
            ok = await client_for(keyed_url).chat.completions.create(model="m", messages=MESSAGES)
    assert denied.value.status_code == 401
    assert denied.value.body["message"].startswith("invalid or missing API key")  # type: ignore[index]
    assert too_big.value.status_code == 413
    assert ok.choices[0].message.content == CORRECTED


async def test_a_local_transformers_model_in_process(client_for: Factory, tiny_model_dir: Path) -> None:
    from interlock.generators import Transformers

    model = Transformers(tiny_model_dir, prompt_format="raw")
    async with serving(create_app(ProxyConfig(GeneratorBackend(model, model="tiny"), max_tokens=12))) as url:
        client = client_for(url)
        whole = await client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=12)
        pieces = []
        async for chunk in await client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=12,
                                                           stream=True):
            if chunk.choices and chunk.choices[0].text:
                pieces.append(chunk.choices[0].text)
        chat = await client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}],
                                                    max_tokens=12)
    expected = await Monitor(Transformers(tiny_model_dir, prompt_format="raw"), [],
                             [_budget(12)]).run("Once upon a time")
    assert whole.choices[0].text == "".join(pieces) == expected.text
    assert whole.usage is not None and whole.usage.completion_tokens == expected.tokens.kept == 12
    prompt_tokens = len(model.tokenizer.encode("Once upon a time", add_special_tokens=False))
    assert whole.usage.prompt_tokens == prompt_tokens > 0  # counted by the local tokenizer
    assert whole.usage.total_tokens == prompt_tokens + 12
    template = model.tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                                   add_generation_prompt=True)
    expected_chat = await Monitor(Transformers(tiny_model_dir, prompt_format="raw"), [], [_budget(12)]).run(template)
    assert chat.choices[0].message.content == expected_chat.text


def _budget(n: int) -> Any:
    from interlock import TokenBudget

    return TokenBudget(max_kept=n)


@pytest.mark.slow
async def test_transformers_serve_upstream(client_for: Factory, served: tuple[str, Path],
                                           local: tuple[Any, Any]) -> None:
    base_url, model_dir = served
    front = create_app(ProxyConfig(UpstreamBackend(base_url, model=str(model_dir), options={"temperature": 0.0})))
    async with serving(front) as url:
        client = client_for(url)
        whole = await client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=MAX_TOKENS)
        chat_pieces = []
        async for chunk in await client.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "Hello"}], max_tokens=MAX_TOKENS, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                chat_pieces.append(chunk.choices[0].delta.content)
    assert whole.choices[0].text == greedy(local, text="Once upon a time")
    assert "".join(chat_pieces) == greedy(local, messages=[{"role": "user", "content": "Hello"}])

