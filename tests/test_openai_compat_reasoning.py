"""``OpenAICompatible`` and reasoning models, against loopback servers that speak vLLM's (both field names),
SGLang's, llama.cpp's and DeepSeek's wire formats: the thinking read from its field, streamed and whole, tokens per
phase from the server's usage, logprobs shared out by phase, raw text split at tags, and a rollback inside the
thinking continued over a chat prefill or over /v1/completions with the template rendered here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import ANSWER, THINKING, Chunk, GenerationRequest, Monitor
from interlock.generators import OpenAICompatible
from interlock.generators.errors import MalformedStream, ThinkingNotContinuable
from interlock.generators.openai_compat.deltas import parse_event, to_chunks
from interlock.generators.openai_compat.templates import ChatTemplate, render_prefix
from interlock.monitor.phases import THINK_TAGS
from interlock.monitor.proxy import serving
from interlock.verifiers import Arithmetic

from tests.reasoning_servers import DIALECTS, TEMPLATE, ReasoningServer, ThinkingModel, render, words

THINK = "I need 7 * 8 + 2.\n7 * 8 = 54.\n54 + 2 = 56.\n"
ANSWER_TEXT = "\n\nThe answer is 56."
FIXED = "7 * 8 = 56.\n56 + 2 = 58.\n"
FIXED_ANSWER = "\n\nThe answer is 58."
FEEDBACK = "Wait, 7 * 8 is 56, not 54. Let me redo this step.\n"


def model() -> ThinkingModel:
    return ThinkingModel({"<think>\n": THINK + "</think>" + ANSWER_TEXT,
                          "Let me redo this step.\n": FIXED + "</think>" + FIXED_ANSWER})


async def collect(gen: OpenAICompatible, request: GenerationRequest) -> list[Chunk]:
    return [c async for c in gen.stream(request)]


def text_of(chunks: list[Chunk], phase: str) -> str:
    return "".join(c.text for c in chunks if c.phase == phase)


# -- reading every dialect ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("stream", [True, False])
async def test_every_dialect_gives_the_thinking_and_the_answer_with_their_tokens(dialect: str, stream: bool) -> None:
    server = ReasoningServer(dialect, model(), whole=not stream)
    async with serving(server.app()) as url:
        gen = OpenAICompatible(url, "reasoner")
        chunks = await collect(gen, GenerationRequest("What is 7 * 8 + 2?"))
    assert text_of(chunks, THINKING) == THINK and text_of(chunks, ANSWER) == ANSWER_TEXT
    tokens = words(THINK + "</think>" + ANSWER_TEXT)
    assert sum(c.n_tokens for c in chunks) == len(tokens)  # the server's usage: the tag counted too
    thinking = sum(c.n_tokens for c in chunks if c.phase == THINKING)
    if dialect in ("sglang", "deepseek") or stream:  # the server's reasoning count, or one event a token
        assert thinking == len(words(THINK)) + 1  # the closing tag is a thinking token
    else:  # one event for all: what the server counted beyond it is shared out by the length of each phase
        assert round((len(tokens) - 2) * len(THINK) / (len(THINK) + len(ANSWER_TEXT))) + 1 == thinking
    if stream:
        expected = {"vllm": "reasoning", "vllm-0.11": "reasoning"}.get(dialect, "reasoning_content")
        assert gen.reasoning_field == expected


def test_a_delta_with_both_fields_of_one_text_reads_it_once_and_usage_details_count_the_thinking() -> None:
    event = {"choices": [{"index": 0, "delta": {"reasoning": "so", "reasoning_content": "so", "content": None}}],
             "usage": {"prompt_tokens": 3, "completion_tokens": 9, "completion_tokens_details":
                       {"reasoning_tokens": 7}}}
    delta = parse_event(event, "chat")
    assert delta is not None and (delta.reasoning, delta.text, delta.reasoning_field) == ("so", "", "reasoning")
    assert delta.usage is not None and delta.usage.reasoning_tokens == 7
    with pytest.raises(MalformedStream, match=r"choices\[0\]\.delta\.reasoning_content is 5, not a string"):
        parse_event({"choices": [{"index": 0, "delta": {"reasoning_content": 5}}]}, "chat")


def test_logprobs_of_an_event_with_both_fields_are_shared_out_by_their_texts() -> None:
    event = {"choices": [{"index": 0, "delta": {"reasoning": "ok.", "content": "The"},
                          "logprobs": {"content": [{"token": "ok", "logprob": -0.1}, {"token": ".", "logprob": -0.2},
                                                   {"token": "</think>", "logprob": -0.3},
                                                   {"token": "The", "logprob": -0.4}]}}]}
    delta = parse_event(event, "chat")
    assert delta is not None
    assert [(c.text, c.phase, c.logprobs) for c in to_chunks(delta)] == [
        ("ok.", THINKING, (-0.1, -0.2, -0.3)), ("The", ANSWER, (-0.4,))]


async def test_streamed_logprobs_keep_their_phase() -> None:
    server = ReasoningServer("vllm", model())
    async with serving(server.app()) as url:
        chunks = await collect(OpenAICompatible(url, "reasoner", logprobs=True), GenerationRequest("q"))
    thinking = [c for c in chunks if c.phase == THINKING and c.text]
    assert [c.text for c in thinking] == words(THINK)
    assert all(c.logprobs is not None and len(c.logprobs) == 1 for c in thinking)
    assert [c.phase for c in chunks if c.text][-1] == ANSWER


# -- raw text split at tags ---------------------------------------------------------------------------------------


@given(st.lists(st.integers(1, 5), min_size=1, max_size=20))
@settings(max_examples=40, deadline=None)
def test_raw_completions_split_at_tags_however_the_stream_is_cut(sizes: list[int]) -> None:
    import anyio

    raw = "<think>\n2 + 2 = 4.\n</think>\n\nThe answer is 4."
    pieces, i, k = [], 0, 0
    while i < len(raw):
        pieces.append(raw[i:i + sizes[k % len(sizes)]])
        i += sizes[k % len(sizes)]
        k += 1

    class Raw(ReasoningServer):
        async def _completion_events(self, tokens: list[str], usage: bool, finish: str):  # type: ignore[no-untyped-def]
            for piece in pieces:
                obj = {"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": piece,
                                                                             "finish_reason": None}]}
                yield b"data: " + json.dumps(obj).encode() + b"\n\n"
            yield b'data: {"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}\n\n'
            yield b"data: [DONE]\n\n"

    async def go() -> list[Chunk]:
        server = Raw("vllm", ThinkingModel({"": ""}))
        async with serving(server.app()) as url:
            return await collect(OpenAICompatible(url, "m", endpoint="completions"), GenerationRequest("Q: 2+2?"))

    chunks = anyio.run(go)
    assert text_of(chunks, THINKING) == "<think>\n2 + 2 = 4.\n</think>"
    assert text_of(chunks, ANSWER) == "\n\nThe answer is 4."
    assert sum(c.n_tokens for c in chunks) == len(pieces)


async def test_a_raw_prompt_that_opened_the_thinking_starts_the_answer_inside_it() -> None:
    server = ReasoningServer("vllm", model())
    async with serving(server.app()) as url:
        gen = OpenAICompatible(url, "reasoner", endpoint="completions")
        chunks = await collect(gen, GenerationRequest(render([{"role": "user", "content": "q"}],
                                                             add_generation_prompt=True)))
    assert text_of(chunks, THINKING) == THINK + "</think>" and text_of(chunks, ANSWER) == ANSWER_TEXT
    assert gen.capabilities.thinking_tags == ("<think>", "</think>")


# -- continuing inside the thinking -------------------------------------------------------------------------------


def thinking_request(prefix: str) -> GenerationRequest:
    return GenerationRequest("What is 7 * 8 + 2?", prefix=prefix, phases=((0, THINKING),))


async def test_a_chat_prefill_continues_the_thinking_with_its_opening_tag_and_no_closing_one() -> None:
    server = ReasoningServer("vllm", model())
    prefix = "I need 7 * 8 + 2.\n" + FEEDBACK
    async with serving(server.app()) as url:
        chunks = await collect(OpenAICompatible(url, "reasoner"), thinking_request(prefix))
    body = server.bodies[-1]
    assert body["messages"][-1] == {"role": "assistant", "content": "<think>\n" + prefix}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert text_of(chunks, THINKING) == FIXED and text_of(chunks, ANSWER) == FIXED_ANSWER


@pytest.mark.parametrize("source", ["folder", "file", "text"])
async def test_with_the_chat_template_a_thinking_continues_over_completions(source: str, tmp_path: Path) -> None:
    if source == "folder":
        (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": TEMPLATE, "eos_token": "x"}))
        template: str = str(tmp_path)
    elif source == "file":
        (tmp_path / "t.jinja").write_text(TEMPLATE)
        template = str(tmp_path / "t.jinja")
    else:
        template = TEMPLATE
    server = ReasoningServer("vllm", model(), continues=False)
    prefix = "I need 7 * 8 + 2.\n" + FEEDBACK
    async with serving(server.app()) as url:
        gen = OpenAICompatible(url, "reasoner", chat_template=template)
        chunks = await collect(gen, thinking_request(prefix))
    assert server.paths == ["/v1/completions"]
    assert server.bodies[0]["prompt"] == "<|im_start|>user\nWhat is 7 * 8 + 2?<|im_end|>\n<|im_start|>assistant\n" \
                                         "<think>\n" + prefix
    assert text_of(chunks, THINKING) == FIXED + "</think>" and text_of(chunks, ANSWER) == FIXED_ANSWER


async def test_without_a_template_and_a_server_that_cannot_continue_the_error_names_what_is_missing() -> None:
    server = ReasoningServer("vllm", model(), continues=False)
    async with serving(server.app()) as url:
        gen = OpenAICompatible(url, "reasoner", continue_final_message=False)
        with pytest.raises(ThinkingNotContinuable, match="Pass chat_template="):
            await collect(gen, thinking_request("I need 7 * 8 + 2.\n"))
    assert server.bodies == []  # nothing was sent: no silent restart of the thinking


def test_the_answer_after_a_closed_thinking_goes_back_in_the_reasoning_fields() -> None:
    gen = OpenAICompatible("http://127.0.0.1:9/v1", "m", continue_final_message=True)
    request = GenerationRequest("q", prefix=THINK + "The answer", phases=((0, THINKING), (len(THINK), ANSWER)))
    assert gen.body(request)["messages"][-1] == {"role": "assistant", "content": "The answer", "reasoning": THINK,
                                                  "reasoning_content": THINK}
    ended = GenerationRequest("q", prefix=THINK, phases=((0, THINKING), (len(THINK), ANSWER)))
    assert gen.body(ended)["messages"][-1]["content"] == "<think>\n" + THINK.strip("\n") + "\n</think>\n\n"


def test_render_prefix_puts_the_tags_where_the_model_expects_them() -> None:
    rendered = "<|im_start|>assistant\n"
    inside = GenerationRequest("q", prefix="abc", phases=((0, THINKING),))
    assert render_prefix(rendered, inside, THINK_TAGS) == rendered + "<think>\nabc"
    after = GenerationRequest("q", prefix="abc\nThe", phases=((0, THINKING), (4, ANSWER)))
    assert render_prefix(rendered, after, THINK_TAGS) == rendered + "<think>\nabc\n</think>The"
    assert render_prefix(rendered + "<think>\n", after, THINK_TAGS) == rendered + "<think>\nabc\n</think>The"
    tagged = GenerationRequest("q", prefix="<think>abc</think>The", phases=((0, THINKING), (18, ANSWER)))
    assert render_prefix("", tagged, THINK_TAGS) == "<think>abc</think>The"


def test_a_chat_template_renders_as_the_server_does_and_bad_ones_say_why(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "hi"}]
    assert ChatTemplate(TEMPLATE).render(messages) == render(messages, add_generation_prompt=True)
    with pytest.raises(Exception, match="neither a tokenizer folder, a template file nor template text"):
        ChatTemplate(str(tmp_path / "missing"))
    (tmp_path / "tokenizer_config.json").write_text("{}")
    with pytest.raises(Exception, match="holds no chat template"):
        ChatTemplate(tmp_path)
    with pytest.raises(Exception, match="is not valid Jinja"):
        ChatTemplate("{% for %}")
    with pytest.raises(Exception, match="failed to render: no"):
        ChatTemplate("{{ raise_exception('no') }}").render(messages)


# -- thinking budgets on the server -------------------------------------------------------------------------------


@pytest.mark.parametrize(("server_name", "field"), [("vllm", {"thinking_token_budget": 5}),
                                                    ("sglang", {"custom_params": {"thinking_budget": 5}}),
                                                    ("llama.cpp", {"thinking_budget_tokens": 5})])
def test_a_thinking_budget_goes_in_each_servers_own_field(server_name: str, field: dict[str, object]) -> None:
    gen = OpenAICompatible("http://127.0.0.1:9/v1", "m", thinking_budget=server_name,  # type: ignore[arg-type]
                           extra_body={"custom_params": {"other": 1}} if server_name == "sglang" else None)
    body = gen.body(GenerationRequest("q", max_thinking_tokens=5))
    for key, value in field.items():
        assert body[key] == ({**value, "other": 1} if server_name == "sglang" else value)  # type: ignore[dict-item]
    assert gen.capabilities.thinking_budget and "thinking_token_budget" not in gen.body(GenerationRequest("q"))


# -- a monitored run ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["vllm", "vllm-0.10", "sglang", "llama.cpp", "deepseek"])
async def test_a_wrong_product_in_the_thinking_is_rolled_back_inside_it(dialect: str) -> None:
    server = ReasoningServer(dialect, model())
    async with serving(server.app()) as url:
        result = await Monitor(OpenAICompatible(url, "reasoner"), [Arithmetic()]).run("What is 7 * 8 + 2?")
    assert result.reasoning == "I need 7 * 8 + 2.\n" + FEEDBACK + FIXED
    assert result.answer == FIXED_ANSWER and result.open_violations == ()
    (rollback,) = result.interventions
    assert rollback.removed_text.startswith("7 * 8 = 54.")  # and what came before the decision
    assert server.bodies[1]["messages"][-1]["content"] == "<think>\nI need 7 * 8 + 2.\n" + FEEDBACK


async def test_the_proxy_checks_the_thinking_and_keeps_it_out_of_the_content() -> None:
    import openai
    from interlock.monitor.proxy import ProxyConfig, UpstreamBackend, create_app

    server = ReasoningServer("vllm", model())
    async with serving(server.app()) as upstream:
        front = create_app(ProxyConfig(UpstreamBackend(upstream + "/v1", model="reasoner"),
                                       verifiers=[Arithmetic()]))
        async with serving(front) as url:
            client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=30)
            try:
                chat = await client.chat.completions.create(
                    model="reasoner", messages=[{"role": "user", "content": "What is 7 * 8 + 2?"}])
            finally:
                await client.close()
    assert chat.choices[0].message.content == FIXED_ANSWER  # until the proxy passes the thinking in its field
    assert [i["message"] for i in chat.model_extra["interlock"]["interventions"]] == [
        "arithmetic: 7 * 8 is 56, not 54."]
    assert server.bodies[1]["messages"][-1]["content"] == "<think>\nI need 7 * 8 + 2.\n" + FEEDBACK
