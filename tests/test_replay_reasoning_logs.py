"""Replay of OpenAI-format logs of reasoning models: the thinking read from the reasoning fields (chat completions,
streamed chunks, the Responses API) so the replayed trace has its phases, checked one phase or both.

The files are written byte for byte as the servers send them: literal bodies in the shapes of vLLM (0.11 and later,
``message.reasoning``), DeepSeek's API (``reasoning_content``, keep-alive comments), OpenAI's Responses API (a
pretty-printed response with a reasoning summary; a gpt-oss response with reasoning text; its event stream) and
the Batch API; and the raw bytes of the loopback servers of ``tests/reasoning_servers.py`` (vLLM old and new,
SGLang, llama.cpp, DeepSeek), captured from their HTTP answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from interlock import create_verifier
from interlock.monitor.cli.main import main as cli
from interlock.monitor.errors import TraceFileError
from interlock.monitor.replay import ImportedTrace, TraceReport, detect_format, read_traces, replay_traces
from reasoning_servers import DIALECTS, ReasoningServer, ThinkingModel

THOUGHT = "7 * 8 = 54.\nThen 54 + 2 = 56.\n"
ANSWER = "So 7 * 8 + 2 = 58."

VLLM_CHAT = (
    b'{"id":"chatcmpl-9f1c2b7a","object":"chat.completion","created":1760000000,"model":"Qwen/Qwen3-8B",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"So 7 * 8 + 2 = 58.","refusal":null,'
    b'"annotations":null,"audio":null,"function_call":null,"tool_calls":[],'
    b'"reasoning":"7 * 8 = 54.\\nThen 54 + 2 = 56.\\n"},"logprobs":null,"finish_reason":"stop","stop_reason":null}],'
    b'"service_tier":null,"system_fingerprint":null,"usage":{"prompt_tokens":18,"total_tokens":44,'
    b'"completion_tokens":26,"prompt_tokens_details":null},"prompt_logprobs":null,"kv_transfer_params":null}\n')

DEEPSEEK_STREAM = (
    b': keep-alive\n\n'
    b'data: {"id":"a1b2c3","object":"chat.completion.chunk","created":1760000000,"model":"deepseek-reasoner",'
    b'"system_fingerprint":"fp_x_prod0820","choices":[{"index":0,"delta":{"role":"assistant","content":null,'
    b'"reasoning_content":""},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"a1b2c3","object":"chat.completion.chunk","created":1760000000,"model":"deepseek-reasoner",'
    b'"system_fingerprint":"fp_x_prod0820","choices":[{"index":0,"delta":{"content":null,'
    b'"reasoning_content":"7 * 8 = 54.\\n"},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"a1b2c3","object":"chat.completion.chunk","created":1760000000,"model":"deepseek-reasoner",'
    b'"system_fingerprint":"fp_x_prod0820","choices":[{"index":0,"delta":{"content":null,'
    b'"reasoning_content":"Then 54 + 2 = 56.\\n"},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"a1b2c3","object":"chat.completion.chunk","created":1760000000,"model":"deepseek-reasoner",'
    b'"system_fingerprint":"fp_x_prod0820","choices":[{"index":0,"delta":{"content":"So 7 * 8 + 2 = 58.",'
    b'"reasoning_content":null},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"a1b2c3","object":"chat.completion.chunk","created":1760000000,"model":"deepseek-reasoner",'
    b'"system_fingerprint":"fp_x_prod0820","choices":[{"index":0,"delta":{"content":"","reasoning_content":null},'
    b'"logprobs":null,"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"a1b2c3","object":"chat.completion.chunk","created":1760000000,"model":"deepseek-reasoner",'
    b'"system_fingerprint":"fp_x_prod0820","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":26,'
    b'"total_tokens":38,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":'
    b'{"reasoning_tokens":17},"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":12}}\n\n'
    b'data: [DONE]\n\n')

# OpenAI's own reasoning models show a summary of the thinking (pretty-printed as the API sends it).
RESPONSES_SUMMARY = b'''{
  "id": "resp_68af4030592c81938ec0a5fbab4a3e9f05438e46b5f69a3b",
  "object": "response",
  "created_at": 1756315696,
  "status": "completed",
  "background": false,
  "error": null,
  "incomplete_details": null,
  "instructions": null,
  "max_output_tokens": null,
  "max_tool_calls": null,
  "model": "o4-mini-2025-04-16",
  "output": [
    {
      "id": "rs_68af4030baa48193b0b43b4c2a176a1a05438e46b5f69a3b",
      "type": "reasoning",
      "summary": [
        {
          "type": "summary_text",
          "text": "**Multiplying first**\\n\\n7 * 8 = 54."
        },
        {
          "type": "summary_text",
          "text": "**Adding**\\n\\nThen 54 + 2 = 56."
        }
      ]
    },
    {
      "id": "msg_68af40337e58819392e935fb404414d005438e46b5f69a3b",
      "type": "message",
      "status": "completed",
      "content": [
        {
          "type": "output_text",
          "annotations": [],
          "logprobs": [],
          "text": "So 7 * 8 + 2 = 58."
        }
      ],
      "role": "assistant"
    }
  ],
  "parallel_tool_calls": true,
  "previous_response_id": null,
  "prompt_cache_key": null,
  "reasoning": {
    "effort": "medium",
    "summary": "detailed"
  },
  "safety_identifier": null,
  "service_tier": "default",
  "store": true,
  "temperature": 1.0,
  "text": {
    "format": {
      "type": "text"
    },
    "verbosity": "medium"
  },
  "tool_choice": "auto",
  "tools": [],
  "top_logprobs": 0,
  "top_p": 1.0,
  "truncation": "disabled",
  "usage": {
    "input_tokens": 18,
    "input_tokens_details": {
      "cached_tokens": 0
    },
    "output_tokens": 211,
    "output_tokens_details": {
      "reasoning_tokens": 192
    },
    "total_tokens": 229
  },
  "user": null,
  "metadata": {}
}
'''

# gpt-oss behind vLLM's Responses API: the thinking itself, as reasoning text; then a tool call.
RESPONSES_CONTENT = (
    b'{"id":"resp_b7e1","created_at":1760000000,"instructions":null,"metadata":null,"model":"openai/gpt-oss-20b",'
    b'"object":"response","output":[{"id":"rs_b7e1","summary":[],"type":"reasoning","content":[{"text":'
    b'"7 * 8 = 54.\\nThen 54 + 2 = 56.\\n","type":"reasoning_text"}],"encrypted_content":null,"status":null},'
    b'{"id":"msg_b7e1","content":[{"annotations":[],"text":"So 7 * 8 + 2 = 58.","type":"output_text",'
    b'"logprobs":null}],"role":"assistant","status":"completed","type":"message"},{"arguments":'
    b'"{\\"x\\":58}","call_id":"call_1","name":"record","type":"function_call","id":"fc_1","status":"completed"}],'
    b'"parallel_tool_calls":true,"temperature":1.0,"tool_choice":"auto","tools":[],"top_p":1.0,'
    b'"background":false,"max_output_tokens":1024,"max_tool_calls":null,"previous_response_id":null,'
    b'"prompt":null,"reasoning":null,"service_tier":"auto","status":"completed","text":null,"top_logprobs":null,'
    b'"truncation":"disabled","usage":{"input_tokens":71,"input_tokens_details":{"cached_tokens":0},'
    b'"output_tokens":40,"output_tokens_details":{"reasoning_tokens":17},"total_tokens":111},"user":null}\n')

RESPONSES_STREAM = (
    b'event: response.created\n'
    b'data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_c9","object":"response",'
    b'"created_at":1760000000,"status":"in_progress","model":"openai/gpt-oss-20b","output":[],"usage":null}}\n\n'
    b'event: response.output_item.added\n'
    b'data: {"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"id":"rs_c9",'
    b'"type":"reasoning","summary":[],"content":[]}}\n\n'
    b'event: response.reasoning_text.delta\n'
    b'data: {"type":"response.reasoning_text.delta","sequence_number":2,"item_id":"rs_c9","output_index":0,'
    b'"content_index":0,"delta":"7 * 8 = 54.\\n"}\n\n'
    b'event: response.reasoning_text.delta\n'
    b'data: {"type":"response.reasoning_text.delta","sequence_number":3,"item_id":"rs_c9","output_index":0,'
    b'"content_index":0,"delta":"Then 54 + 2 = 56.\\n"}\n\n'
    b'event: response.output_item.added\n'
    b'data: {"type":"response.output_item.added","sequence_number":4,"output_index":1,"item":{"id":"msg_c9",'
    b'"type":"message","role":"assistant","status":"in_progress","content":[]}}\n\n'
    b'event: response.output_text.delta\n'
    b'data: {"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_c9","output_index":1,'
    b'"content_index":0,"delta":"So 7 * 8 + 2 = 58.","logprobs":[]}\n\n')
RESPONSES_COMPLETED = (
    b'event: response.completed\n'
    b'data: {"type":"response.completed","sequence_number":6,"response":{"id":"resp_c9","object":"response",'
    b'"created_at":1760000000,"status":"completed","model":"openai/gpt-oss-20b","output":[{"id":"rs_c9",'
    b'"type":"reasoning","summary":[],"content":[{"type":"reasoning_text","text":"7 * 8 = 54.\\nThen 54 + 2 = 56.'
    b'\\n"}],"encrypted_content":null,"status":null},{"id":"msg_c9","type":"message","status":"completed",'
    b'"content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"So 7 * 8 + 2 = 58."}],'
    b'"role":"assistant"}],"usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":0},'
    b'"output_tokens":26,"output_tokens_details":{"reasoning_tokens":17},"total_tokens":38}}}\n\n')


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _one(path: Path, **kw: Any) -> ImportedTrace:
    (item,) = read_traces(path, **kw)
    assert isinstance(item, ImportedTrace), item
    return item


async def _checked(items: list[ImportedTrace], phase: str = "both") -> list[TraceReport]:
    verifier = create_verifier("arithmetic")
    verifier.phase = phase  # type: ignore[assignment]
    reports = await replay_traces(items, [verifier], processes=0)
    assert all(isinstance(r, TraceReport) for r in reports)
    return reports  # type: ignore[return-value]


def _fails(report: TraceReport) -> list[tuple[str, str]]:
    record = report.to_dict()
    return [(v["phase"], v["text"]) for v in record["verdicts"] if v["kind"] == "fail"]


async def test_a_vllm_chat_completion_is_thinking_then_answer(tmp_path: Path) -> None:
    item = _one(_write(tmp_path, "vllm.jsonl", VLLM_CHAT))
    assert item.id == "chatcmpl-9f1c2b7a"
    assert item.text == THOUGHT + ANSWER and item.phases == ((0, "thinking"), (len(THOUGHT), "answer"))
    assert dict(item.labels) == {"model": "Qwen/Qwen3-8B", "completion_tokens": 26, "reasoning_field": "reasoning",
                                 "finish_reason": "stop"}
    (report,) = await _checked([item])
    assert _fails(report) == [("thinking", "7 * 8 = 54")]
    record = report.to_dict()
    assert record["phases"] == [[0, "thinking"], [len(THOUGHT), "answer"]]
    assert (record["thinking_tokens"], record["answer_tokens"]) == (12, 8)  # word pieces: no per-token data
    assert [v["phase"] for v in record["verdicts"]] == ["thinking", "thinking", "answer"]


async def test_a_deepseek_stream_log_is_put_together_with_the_servers_token_counts(tmp_path: Path) -> None:
    path = _write(tmp_path, "deepseek.sse", DEEPSEEK_STREAM)
    assert detect_format(path) == "openai"
    item = _one(path)
    assert (item.id, item.text, item.prompt) == ("a1b2c3", THOUGHT + ANSWER, "")
    assert item.phases == ((0, "thinking"), (len(THOUGHT), "answer"))
    assert dict(item.labels) == {"model": "deepseek-reasoner", "completion_tokens": 26, "reasoning_tokens": 17,
                                 "finish_reason": "stop", "reasoning_field": "reasoning_content"}
    assert item.phase_tokens() == (17, 9) and item.warnings == ()  # usage, as the live reader counts it
    (report,) = await _checked([item])
    assert _fails(report) == [("thinking", "7 * 8 = 54")]
    (answer_only,) = await _checked([item], phase="answer")
    assert answer_only.passed and all(v.span is not None and v.span.start >= len(THOUGHT)
                                      for v in answer_only.verdicts)


async def test_a_stream_log_cut_short_is_read_with_a_warning_and_bad_events_are_named(tmp_path: Path) -> None:
    cut = DEEPSEEK_STREAM.split(b'data: {"id":"a1b2c3","object":"chat.completion.chunk","created":1760000000,'
                                b'"model":"deepseek-reasoner","system_fingerprint":"fp_x_prod0820","choices":'
                                b'[{"index":0,"delta":{"content":"","reasoning_content":null}')[0]
    item = _one(_write(tmp_path, "cut.sse", cut))
    assert item.text == THOUGHT + ANSWER and "finish_reason" not in item.labels
    assert item.warnings == (f"{tmp_path / 'cut.sse'}:3: the stream ended without a finish (cut short?); read up to "
                             "its end",)
    bad = DEEPSEEK_STREAM.replace(b'"reasoning_content":"Then 54', b'"reasoning_content":5,"x":"Then 54')
    (error,) = read_traces(_write(tmp_path, "bad.sse", bad))
    assert isinstance(error, TraceFileError)
    assert str(error) == (f"{tmp_path / 'bad.sse'}:3: stream 'a1b2c3': line 7: choices[0].delta.reasoning_content is "
                          "5, not a string")


async def test_responses_with_a_summary_and_with_reasoning_text(tmp_path: Path) -> None:
    summary = _one(_write(tmp_path, "o4.json", RESPONSES_SUMMARY))
    thought = "**Multiplying first**\n\n7 * 8 = 54.\n\n**Adding**\n\nThen 54 + 2 = 56."
    assert summary.text == thought + ANSWER and summary.phases == ((0, "thinking"), (len(thought), "answer"))
    assert dict(summary.labels) == {"model": "o4-mini-2025-04-16", "output_tokens": 211, "reasoning_tokens": 192,
                                    "reasoning_field": "summary", "status": "completed"}
    content = _one(_write(tmp_path, "oss.jsonl", RESPONSES_CONTENT))
    call = '<tool_call>{"id":"call_1","name":"record","arguments":"{\\"x\\":58}"}</tool_call>\n'
    assert content.text == THOUGHT + ANSWER + "\n" + call
    assert content.phases == ((0, "thinking"), (len(THOUGHT), "answer"))
    assert content.labels["reasoning_field"] == "content"
    reports = await _checked([summary, content])
    assert [_fails(r) for r in reports] == [[("thinking", "7 * 8 = 54")]] * 2


async def test_a_responses_event_stream_with_and_without_its_final_event(tmp_path: Path) -> None:
    whole = _one(_write(tmp_path, "stream.sse", RESPONSES_STREAM + RESPONSES_COMPLETED))
    assert (whole.id, whole.text, whole.warnings) == ("resp_c9", THOUGHT + ANSWER, ())
    assert whole.phases == ((0, "thinking"), (len(THOUGHT), "answer"))
    assert dict(whole.labels) == {"model": "openai/gpt-oss-20b", "output_tokens": 26, "reasoning_tokens": 17,
                                  "reasoning_field": "content", "status": "completed"}
    cut = _one(_write(tmp_path, "cut.sse", RESPONSES_STREAM))  # no response.completed: the deltas put together
    assert (cut.text, cut.phases) == (whole.text, whole.phases)
    assert cut.warnings == (f"{tmp_path / 'cut.sse'}:2: the stream ended without a finish (cut short?); read up to "
                            "its end",)
    events = b"".join(line[6:] + b"\n" for line in (RESPONSES_STREAM + RESPONSES_COMPLETED).split(b"\n")
                      if line.startswith(b"data: "))  # the events as JSON Lines, two streams one after another
    first, second = read_traces(_write(tmp_path, "two.jsonl", events + events.replace(b"resp_c9", b"resp_d1")))
    assert isinstance(first, ImportedTrace) and isinstance(second, ImportedTrace)
    assert (first.id, second.id, first.line, second.line) == ("resp_c9", "resp_d1", 1, 8)
    assert first.text == second.text == whole.text


def test_batch_output_request_response_pairs_and_conversations(tmp_path: Path) -> None:
    body = json.loads(VLLM_CHAT)
    lines = [
        {"id": "batch_req_1", "custom_id": "q-7", "response": {"status_code": 200, "request_id": "req_1",
                                                               "body": body}, "error": None},
        {"id": "batch_req_2", "custom_id": "q-8", "response": None,
         "error": {"code": "rate_limit_exceeded", "message": "Rate limit reached"}},
        {"request": {"model": "Qwen/Qwen3-8B", "messages": [{"role": "system", "content": "Be exact."},
                                                            {"role": "user", "content": "What is 7 * 8 + 2?"}]},
         "response": body},
        {"id": "conv-1", "messages": [{"role": "user", "content": [{"type": "text", "text": "What is 7 * 8 + 2?"}]},
                                      {"role": "assistant", "reasoning_content": THOUGHT, "content": ANSWER}]},
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    assert detect_format(path) == "openai"
    batch, failed, pair, conversation = read_traces(path)
    assert isinstance(batch, ImportedTrace) and batch.id == "q-7" and batch.text == THOUGHT + ANSWER
    assert isinstance(failed, TraceFileError)
    assert str(failed) == f"{path}:2: batch request 'q-8' failed: 'Rate limit reached'"
    assert isinstance(pair, ImportedTrace) and (pair.id, pair.prompt) == ("chatcmpl-9f1c2b7a", "What is 7 * 8 + 2?")
    assert isinstance(conversation, ImportedTrace)
    assert (conversation.id, conversation.prompt, conversation.text) == ("conv-1", "What is 7 * 8 + 2?",
                                                                         THOUGHT + ANSWER)
    assert conversation.phases == pair.phases == batch.phases == ((0, "thinking"), (len(THOUGHT), "answer"))


def test_content_without_a_reasoning_field_is_split_at_its_tags(tmp_path: Path) -> None:
    # A server without a reasoning parser: DeepSeek-R1's template opened <think> in the prompt, the text closes it.
    raw = {"id": "chatcmpl-raw", "object": "chat.completion", "created": 1760000000, "model": "r1",
           "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "logprobs": None,
                        "finish_reason": "stop"} for i, text in enumerate(
               [THOUGHT + "</think>\n\n" + ANSWER, "<think>\n" + THOUGHT + "</think>" + ANSWER])],
           "usage": {"prompt_tokens": 5, "completion_tokens": 40, "total_tokens": 45}}
    path = tmp_path / "raw.jsonl"
    path.write_text(json.dumps(raw) + "\n", encoding="utf-8")
    first, second = read_traces(path)
    assert isinstance(first, ImportedTrace) and isinstance(second, ImportedTrace)
    assert (first.id, second.id) == ("chatcmpl-raw/0", "chatcmpl-raw/1")
    assert first.phases == ((0, "thinking"), (len(THOUGHT + "</think>"), "answer"))
    assert second.phases == ((0, "thinking"), (len("<think>\n" + THOUGHT + "</think>"), "answer"))
    assert "reasoning_field" not in first.labels
    untagged = list(read_traces(path, tags=()))  # --thinking-tags none
    assert [t.phases for t in untagged if isinstance(t, ImportedTrace)] == [(), ()]


def test_malformed_objects_are_named(tmp_path: Path) -> None:
    cases = [({"object": "chat.completion", "id": "x", "choices": []}, "choices is empty: the response holds no "
              "completion"),
             ({"object": "chat.completion", "id": "x", "choices": [{"index": 0, "message": {"reasoning": 7}}]},
              "choices[0].message.reasoning is 7, not a string"),
             ({"object": "response", "id": "r", "output": [{"type": "reasoning", "summary": "no"}]},
              "output[0].summary is 'no', not a list")]
    for n, (obj, message) in enumerate(cases):
        path = tmp_path / f"bad{n}.jsonl"
        path.write_text(json.dumps(obj) + "\n", encoding="utf-8")
        (error,) = read_traces(path)
        assert isinstance(error, TraceFileError) and str(error) == f"{path}:1: {message}"


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_the_bytes_each_server_sends_replay_as_one_trace(tmp_path: Path, dialect: str) -> None:
    model = ThinkingModel({"": "7 * 8 = 54.\nThen 54 + 2 = 56.\n</think>\n\nSo 7 * 8 + 2 = 58."})
    server = ReasoningServer(dialect, model)
    body = {"model": "reasoner", "messages": [{"role": "user", "content": "What is 7 * 8 + 2?"}]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.app()), base_url="http://server") as c:
        whole = (await c.post("/v1/chat/completions", json=body)).content
        async with c.stream("POST", "/v1/chat/completions",
                            json={**body, "stream": True, "stream_options": {"include_usage": True}}) as r:
            streamed = b"".join([part async for part in r.aiter_raw()])
        async with c.stream("POST", "/v1/completions", json={"model": "reasoner", "prompt": "<|im_start|>user\n"
                            "What is 7 * 8 + 2?<|im_end|>\n<|im_start|>assistant\n<think>\n", "stream": True}) as r:
            completions = b"".join([part async for part in r.aiter_raw()])
    items = [_one(_write(tmp_path, "whole.json", whole)), _one(_write(tmp_path, "stream.sse", streamed)),
             _one(_write(tmp_path, "completions.sse", completions))]
    thinking = [i.text[:i.phases[1][0]] for i in items]
    assert [i.text[i.phases[1][0]:] for i in items[:2]] == ["\n\nSo 7 * 8 + 2 = 58."] * 2
    assert thinking[0] == thinking[1] and thinking[0].startswith("7 * 8 = 54.") and "</think>" not in thinking[0]
    assert thinking[2].endswith("</think>")  # raw text keeps the tag, which belongs to the thinking
    field = {"vllm": "reasoning", "vllm-0.11": "reasoning"}.get(dialect, "reasoning_content")
    assert [i.labels.get("reasoning_field") for i in items] == [field, field, None]
    reports = await _checked(items)
    assert [_fails(r) for r in reports] == [[("thinking", "7 * 8 = 54")]] * 3


def test_replay_command_checks_one_phase(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "deepseek.sse", DEEPSEEK_STREAM)
    assert cli(["replay", str(path), "-v", "arithmetic", "--processes", "0", "--json"]) == 1
    trace, totals = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (trace["first_violation"]["phase"], trace["thinking_tokens"], trace["answer_tokens"]) == ("thinking", 17, 9)
    assert totals["thinking_tokens"] == 17
    assert totals["by_phase"] == {"answer": {"pass": 1, "fail": 0, "unknown": 0},
                                  "thinking": {"pass": 1, "fail": 1, "unknown": 0}}
    assert cli(["replay", str(path), "-v", "arithmetic", "--processes", "0", "--json", "--phase", "answer"]) == 0
    trace, _ = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [v["phase"] for v in trace["verdicts"]] == ["answer"]
    assert cli(["replay", str(path), "-v", "arithmetic", "--processes", "0", "--phase", "arithmetic=thinking",
                "--phase", "answer"]) == 1  # the verifier's own choice wins over the one for every verifier
    assert "a1b2c3: arithmetic [0, 10) arithmetic: 7 * 8 is 56, not 54." in capsys.readouterr().out
    assert cli(["replay", str(path), "-v", "arithmetic", "--phase", "reasoning"]) == 2
    assert "--phase must be 'thinking', 'answer' or 'both', got 'reasoning'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_ray_engine_reads_stream_logs_skythought_and_custom_tags_as_the_local_one(
        ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sse = _write(tmp_path, "deepseek.sse", DEEPSEEK_STREAM)
    sky = tmp_path / "sky.jsonl"
    sky.write_text("".join(json.dumps({"idx": i, "question": "What is 7 * 8 + 2?", "code": [text], "gt": "58",
                                       "score": [i == 1]}) + "\n"
                           for i, text in enumerate(["[[" + THOUGHT + "]]" + ANSWER, THOUGHT + ANSWER])),
                   encoding="utf-8")
    args = [str(sse), str(sky), "-v", "arithmetic", "--json", "--thinking-tags", "[[ ]]", "--phase", "thinking"]
    assert cli(["replay", *args]) == 1
    local = capsys.readouterr().out.splitlines()
    assert cli(["replay", *args, "--engine", "ray"]) == 1
    assert capsys.readouterr().out.splitlines()[:-1] == local[:-1]  # the totals differ only in their timing
    records = [json.loads(line) for line in local[:-1]]
    assert [(r["id"], r.get("phases")) for r in records] == [
        ("a1b2c3", [[0, "thinking"], [len(THOUGHT), "answer"]]),
        ("0", [[0, "thinking"], [len(THOUGHT) + 4, "answer"]]), ("1", None)]
    assert [[v.get("phase") for v in r["verdicts"]] for r in records] == [  # no verdict on an answer
        ["thinking"] * 2, ["thinking"] * 3, []]  # (the closing ']]' is a step of its own)


def test_an_error_event_and_many_interleaved_streams(tmp_path: Path) -> None:
    error = b'data: {"error":{"message":"the model is overloaded","type":"server_error","code":503}}\n\n'
    good, bad = read_traces(_write(tmp_path, "err.sse", DEEPSEEK_STREAM + error))
    assert isinstance(good, ImportedTrace) and good.text == THOUGHT + ANSWER
    assert isinstance(bad, TraceFileError)
    assert str(bad) == (f"{tmp_path / 'err.sse'}:17: the server reported an error inside the stream: the model is "
                        "overloaded")
    lines = [json.dumps({"id": f"s{i}", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"reasoning_content": f"{i} + {i} = {2 * i}.\n"}, "finish_reason": None}]})
        for i in range(70)]  # 70 requests logged at once, none finished
    items = list(read_traces(_write(tmp_path, "many.jsonl", "\n".join(lines).encode() + b"\n")))
    assert [i.id for i in items] == [f"s{i}" for i in range(70)]  # type: ignore[union-attr]
    warnings = [i.warnings[0].split(": ", 1)[1] for i in items]  # type: ignore[union-attr]
    assert warnings[:6] == ["more than 64 streams were open at once; this one was read up to here"] * 6
    assert set(warnings[6:]) == {"the stream ended without a finish (cut short?); read up to its end"}
    assert all(i.phases == ((0, "thinking"),) for i in items)  # type: ignore[union-attr]
