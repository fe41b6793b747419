"""``interlock run`` in front of a reasoning model's server (``delta.reasoning`` and ``delta.reasoning_content``)
and on a local thinking model: a wrong product in the thinking is failed, rolled back inside the thinking and
corrected; a thinking budget ends a long thinking with the budget message and an answer; the display shows the
thinking apart from the answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from interlock.monitor.cli import main

from tests.reasoning_servers import TEMPLATE, ReasoningServer, ThinkingModel, served_in_thread

THINK = "I need 7 * 8 + 2.\n7 * 8 = 54.\n54 + 2 = 56.\n"
FIXED = "7 * 8 = 56.\n56 + 2 = 58.\n"
FEEDBACK = "Wait, 7 * 8 is 56, not 54. Let me redo this step.\n"
LONG = "".join(f"Step {i}: check it again.\n" for i in range(30))


def model() -> ThinkingModel:
    return ThinkingModel({"<think>\n": THINK + "</think>\n\nThe answer is 56.",
                          "Let me redo this step.\n": FIXED + "</think>\n\nThe answer is 58.",
                          "</think>\n\n": "The answer is 4.",
                          "Think long.<|im_end|>\n<|im_start|>assistant\n<think>\n": LONG + "</think>\n\nIt is 4."})


@pytest.mark.parametrize("dialect", ["vllm", "vllm-0.10"])  # delta.reasoning, delta.reasoning_content
def test_a_wrong_product_in_the_thinking_is_rolled_back_inside_it(dialect: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    server = ReasoningServer(dialect, model())
    with served_in_thread(server.app()) as url:
        code = main(["run", "What is 7 * 8 + 2?", "--base-url", url + "/v1", "--model", "reasoner", "-v",
                     "arithmetic", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["outcome"] == "verified"
    assert payload["reasoning"] == "I need 7 * 8 + 2.\n" + FEEDBACK + FIXED
    assert payload["answer"] == "\n\nThe answer is 58."
    (rollback,) = payload["interventions"]
    assert (rollback["action"], rollback["source"], rollback["position"]) == ("rollback", "arithmetic", 18)
    assert rollback["removed_text"].startswith("7 * 8 = 54.")
    fails = [v for v in payload["verdicts"] if v["kind"] == "fail"]
    assert [(v["message"], v["span"]) for v in fails] == [("arithmetic: 7 * 8 is 56, not 54.", [18, 28])]
    assert payload["tokens"]["thinking"] > 0 and payload["phases"] == [[0, "thinking"],
                                                                        [len(payload["reasoning"]), "answer"]]
    assert server.bodies[1]["messages"][-1] == {"role": "assistant",
                                                "content": "<think>\nI need 7 * 8 + 2.\n" + FEEDBACK}


def test_into_a_pipe_the_thinking_and_the_answer_are_marked(capsys: pytest.CaptureFixture[str]) -> None:
    server = ReasoningServer("vllm", model())
    with served_in_thread(server.app()) as url:
        code = main(["run", "What is 7 * 8 + 2?", "--base-url", url + "/v1", "--model", "reasoner", "-v",
                     "arithmetic"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("── thinking ──\nI need 7 * 8 + 2.\n")
    assert "7 * 8 = 54." in out and FEEDBACK + FIXED in out  # the feedback and the fix, in the thinking
    assert out.count("── answer ──\n") >= 1 and "The answer is 58.\n" in out
    assert out.splitlines()[-1].startswith("✓ verified: ")
    assert " thinking), " in out.splitlines()[-1]


def test_with_the_chat_template_the_rollback_continues_over_completions(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "chat_template.jinja").write_text(TEMPLATE)
    server = ReasoningServer("sglang", model(), continues=False)
    with served_in_thread(server.app()) as url:
        code = main(["run", "What is 7 * 8 + 2?", "--base-url", url + "/v1", "--model", "reasoner", "-v",
                     "arithmetic", "--json", "--chat-template", str(tmp_path)])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["reasoning"] == "I need 7 * 8 + 2.\n" + FEEDBACK + FIXED
    assert payload["text"] == payload["reasoning"] + "</think>" + payload["answer"]  # the raw text's own tag
    assert server.paths == ["/v1/chat/completions", "/v1/completions"]


def test_without_a_way_to_continue_the_thinking_the_run_fails_and_names_the_fix(
        capsys: pytest.CaptureFixture[str]) -> None:
    server = ReasoningServer("vllm", model(), continues=False)
    with served_in_thread(server.app()) as url:
        code = main(["run", "What is 7 * 8 + 2?", "--base-url", url + "/v1", "--model", "reasoner", "-v",
                     "arithmetic", "--json"])
    captured = capsys.readouterr()
    assert code == 2 and "Pass chat_template=" in captured.err
    assert len(server.bodies) == 2  # the first answer, and the prefill the server refused: nothing restarted


def test_a_thinking_budget_over_http_ends_the_thinking_with_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    server = ReasoningServer("deepseek", model())
    with served_in_thread(server.app()) as url:
        code = main(["run", "Think long.", "--base-url", url + "/v1", "--model", "reasoner", "-v", "none",
                     "--max-thinking-tokens", "12", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["tokens"]["thinking"] == 12
    assert payload["reasoning"].endswith("Considering the limited time, I have to give the solution now.\n")
    assert payload["answer"] == "The answer is 4."


def test_a_thinking_budget_on_the_local_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tiny_model import save_tiny_model

    folder = save_tiny_model(tmp_path / "thinker", thinking=True)
    code = main(["run", "What is 2 + 3?", "--model", str(folder), "--max-tokens", "40", "-v", "none",
                 "--max-thinking-tokens", "6", "--thinking-budget-message", "\nTime is up.\n", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert payload["tokens"]["thinking"] == 6 and payload["reasoning"].endswith("\nTime is up.\n")
    ended = payload["text"].index("\nTime is up.\n</think>") + len("\nTime is up.\n</think>")
    assert payload["phases"] == [[0, "thinking"], [ended, "answer"]] and payload["tokens"]["answer"] > 0
    assert code in (0, 3)  # the random model may or may not end its answer within the budget


def test_the_display_dims_the_thinking_and_notes_where_the_answer_begins() -> None:
    from interlock import Chunk, ChunkAppended, Pass, RunFinished, Span, VerdictReceived
    from interlock.monitor.cli.run_display import STYLES, TraceDisplay

    display = TraceDisplay()
    display.feed(ChunkAppended(chunk=Chunk("7 * 8 = 56.\n", phase="thinking"), position=0))
    display.feed(VerdictReceived(verdict=Pass(span=Span(0, 10))))
    display.feed(ChunkAppended(chunk=Chunk("The answer."), position=12))
    display.feed(RunFinished())
    assert display.pieces() == [("── thinking ──\n", "note"), ("7 * 8 = 56", "thinking_ok"), (".\n", "thinking"),
                                ("── answer ──\n", "note"), ("The answer.", "text")]
    assert STYLES["thinking"] == "dim"
