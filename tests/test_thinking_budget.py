"""``ThinkingBudget``: the thinking capped alone and ended with the budget message so that the model still answers
(scripted raw text, a loopback server with and without its own budget, the tiny local model); a minimum that
reopens an early end with "Wait"; a server that does not honour the budget it was asked for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from interlock import THINKING, ConfigError, GovernorDecided, Monitor
from interlock.generators import OpenAICompatible, Scripted, Transformers
from interlock.monitor.governors import DEFAULT_BUDGET_MESSAGE, ThinkingBudget, TokenBudget
from interlock.monitor.proxy import serving

from tests.reasoning_servers import ReasoningServer, ThinkingModel, words

LONG = "".join(f"Step {i}: check it again.\n" for i in range(30))


async def decided(monitor: Monitor, prompt: str = "q") -> tuple[Any, list[GovernorDecided]]:
    async with monitor.stream(prompt) as run:
        events = [e async for e in run if isinstance(e, GovernorDecided)]
    return run.result, events


async def test_a_long_thinking_ends_with_the_budget_message_and_the_model_answers() -> None:
    gen = Scripted({"": "<think>\n" + LONG + "</think>\n\nThe answer is 4.", "</think>": "\n\nThe answer is 4."},
                   thinking_tags="<think>")
    result, events = await decided(Monitor(gen, governors=[ThinkingBudget(12)]))
    assert result.tokens.thinking == 12 and result.text.count("</think>") == 1
    assert result.reasoning.endswith(DEFAULT_BUDGET_MESSAGE) and result.answer == "\n\nThe answer is 4."
    assert [(e.action, e.reason) for e in events] == [
        ("end_thinking", "the thinking budget of 12 tokens is spent: answering now")]
    assert result.outcome.value == "unchecked" and result.stop_reason.value == "complete"
    assert gen.requests[-1].phase == "answer" and gen.requests[-1].prefix.endswith(DEFAULT_BUDGET_MESSAGE + "</think>")


async def test_an_early_end_of_the_thinking_is_reopened_with_wait() -> None:
    gen = Scripted({"": "<think>\nIt is 4.</think>\n\nThe answer is 4.",
                    "Wait": ", let me check: 2 + 2 = 4 indeed.</think>\n\nThe answer is 4."}, thinking_tags="<think>")
    result, events = await decided(Monitor(gen, governors=[ThinkingBudget(min_tokens=6)]))
    assert result.reasoning == "\nIt is 4.Wait, let me check: 2 + 2 = 4 indeed."
    assert result.answer == "\n\nThe answer is 4." and result.tokens.thinking >= 6
    assert [e.action for e in events] == ["extend_thinking"]
    (reopen,) = result.interventions
    assert reopen.removed_text.startswith("</think>") and reopen.feedback == "Wait"


def test_a_thinking_budget_is_checked_when_made() -> None:
    with pytest.raises(ConfigError, match="needs max_tokens or min_tokens"):
        ThinkingBudget()
    with pytest.raises(ConfigError, match="min_tokens=9 is above max_tokens=3"):
        ThinkingBudget(3, min_tokens=9)
    with pytest.raises(ConfigError, match="does not pass thinking budgets to its server"):
        Monitor(Scripted("x"), governors=[ThinkingBudget(3, server=True)])


# -- over HTTP ----------------------------------------------------------------------------------------------------


def thinking_model() -> ThinkingModel:
    return ThinkingModel({"<think>\n": LONG + "</think>\n\nThe answer is 4.",
                          "</think>\n\n": "The answer is 4.",
                          "limited time, I have to give the solution now.\n": "The answer is 4."})


@pytest.mark.parametrize("dialect", ["vllm", "deepseek"])
async def test_over_http_the_budget_cuts_the_stream_and_the_answer_follows_the_closed_thinking(dialect: str) -> None:
    server = ReasoningServer(dialect, thinking_model())
    async with serving(server.app()) as url:
        gen = OpenAICompatible(url, "reasoner")
        result, events = await decided(Monitor(gen, governors=[ThinkingBudget(12), TokenBudget(max_total=400)]))
    assert result.tokens.thinking == 12 and result.reasoning.endswith(DEFAULT_BUDGET_MESSAGE)
    assert result.answer == "The answer is 4." and [e.action for e in events] == ["end_thinking"]
    assert server.bodies[0]["max_tokens"] == 12  # the first request asks for no more than the thinking may use
    closed = server.bodies[1]["messages"][-1]["content"]
    assert closed.startswith("<think>\n") and closed.endswith("\n</think>\n\n")


async def test_a_server_that_enforces_the_budget_ends_the_thinking_itself() -> None:
    message = "\nTime is up.\n"
    server = ReasoningServer("vllm", thinking_model(), budget_field="thinking_token_budget", budget_message=message)
    async with serving(server.app()) as url:
        gen = OpenAICompatible(url, "reasoner", thinking_budget="vllm")
        result, events = await decided(Monitor(gen, governors=[ThinkingBudget(10, server=True)]))
    assert len(server.bodies) == 1 and server.bodies[0]["thinking_token_budget"] == 10
    assert "max_tokens" not in server.bodies[0] or server.bodies[0]["max_tokens"] > 10
    assert result.reasoning == "".join(words(LONG)[:10]) + message and result.answer == "\n\nThe answer is 4."
    assert events == []


async def test_a_server_that_ignores_the_budget_is_caught_and_the_cap_enforced_here() -> None:
    server = ReasoningServer("vllm", thinking_model())  # reads no budget field
    async with serving(server.app()) as url:
        gen = OpenAICompatible(url, "reasoner", thinking_budget="vllm")
        result, events = await decided(Monitor(gen, governors=[ThinkingBudget(10, server=True, slack=2)]))
    assert server.bodies[0]["thinking_token_budget"] == 10
    assert [e.reason for e in events] == [
        "the server did not honour the thinking budget of 10 tokens (13 thinking tokens): ended here, and enforced "
        "here from now on"]
    assert result.tokens.thinking == 13 and result.answer == "The answer is 4."


# -- the local backend --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def thinking_tiny() -> tuple[Any, Any]:
    from tiny_model import build_tiny_model

    return build_tiny_model(thinking=True)


async def test_the_tiny_models_long_thinking_ends_with_the_budget_message_and_an_answer(
        thinking_tiny: tuple[Any, Any]) -> None:
    gen = Transformers(*thinking_tiny, max_new_tokens=40)
    result, events = await decided(Monitor(gen, governors=[ThinkingBudget(8), TokenBudget(max_kept=30)]))
    assert result.tokens.thinking == 8 and [e.action for e in events][:1] == ["end_thinking"]
    assert result.reasoning.endswith(DEFAULT_BUDGET_MESSAGE)
    assert result.text.count("</think>") == 1 and result.tokens.answer > 0 and result.answer.strip()
    ids = gen.context_ids
    assert gen.tokenizer.convert_tokens_to_ids("</think>") in ids  # the tag is in the model's context


async def test_the_tiny_models_phase_follows_the_tags_it_writes(thinking_tiny: tuple[Any, Any],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from interlock.generators.transformers import backend

    model, tokenizer = thinking_tiny
    script: Iterator[int] = iter(tokenizer("x = 3.</think>\n\nSo 3.")["input_ids"] + [tokenizer.eos_token_id])
    monkeypatch.setattr(backend, "choose", lambda *args, **kwargs: next(script))
    result = await Monitor(Transformers(model, tokenizer, max_new_tokens=30)).run("q")
    assert (result.reasoning, result.answer) == ("x = 3.", "\n\nSo 3.")
    assert result.phases == ((0, THINKING), (len("x = 3.</think>"), "answer"))


def test_the_templates_thinking_switch_is_set_or_the_error_says_there_is_none(
        thinking_tiny: tuple[Any, Any], tmp_path: Path) -> None:
    model, tokenizer = thinking_tiny
    assert Transformers(model, tokenizer).opens_thinking("q")
    off = Transformers(model, tokenizer, enable_thinking=False)
    assert not off.opens_thinking("q") and off.prompt_text("q").endswith("<think>\n\n</think>\n\n")
    from tiny_model import build_tiny_model

    plain_model, plain_tokenizer = build_tiny_model()
    with pytest.raises(ConfigError, match="the chat template has no switch 'enable_thinking'"):
        Transformers(plain_model, plain_tokenizer, enable_thinking=True)
