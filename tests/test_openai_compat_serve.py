"""``generators.OpenAICompatible`` against a real server: ``transformers serve`` on loopback with the tiny random
model, offline. Expected texts come from the same model decoding greedily in this process, token for token.

The server takes 10-15 s to start on a 2-core machine (importing torch and FastAPI), hence ``slow``; all tests
share one server per module.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from interlock import EveryNTokens, Fail, GenerationRequest, Monitor, Span, StopReason, TraceView, Verifier
from interlock.generators import OpenAICompatible

from tests.tiny_model import save_tiny_model

pytestmark = pytest.mark.slow

MAX_TOKENS = 10


def _serve_unavailable() -> str | None:
    """Why ``transformers serve`` cannot run here, or None."""
    try:
        from transformers.utils.import_utils import is_serve_available
    except ImportError:
        return "transformers is not installed (pip install -e '.[hf]')"
    if not is_serve_available():
        return "transformers serve needs fastapi, uvicorn, pydantic and openai (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``(base_url, model folder)`` of a ``transformers serve`` process pinned to the tiny model."""
    reason = _serve_unavailable()
    if reason is not None:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("serve")
    model_dir = save_tiny_model(root / "tiny")
    (root / "hub").mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HF_HUB_CACHE": str(root / "hub"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = (root / "serve.log").open("wb")
    command = [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve",
               str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"transformers serve exited with {process.returncode}:\n"
                            f"{(root / 'serve.log').read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("transformers serve did not answer /health within 120 s")
            time.sleep(0.2)
        yield base_url, model_dir
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()


@pytest.fixture(scope="module")
def local(served: tuple[str, Path]) -> tuple[Any, Any]:
    """The same model loaded in this process, for the expected texts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = served[1]
    return AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)


def greedy(local: tuple[Any, Any], *, text: str | None = None, messages: list[dict[str, str]] | None = None,
           max_new_tokens: int = MAX_TOKENS) -> str:
    """The greedy continuation as the server streams it: decoded text, less an incomplete UTF-8 character at the
    very end (a streaming detokenizer holds those back until the next token completes them)."""
    model, tokenizer = local
    if messages is not None:
        inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)
    else:
        inputs = tokenizer(text, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    decoded: str = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    return decoded.rstrip("\ufffd")


async def texts(gen: OpenAICompatible, request: GenerationRequest) -> list[str]:
    with anyio.fail_after(60):
        return [chunk.text async for chunk in gen.stream(request)]


def generator(served: tuple[str, Path], **kwargs: Any) -> OpenAICompatible:
    base_url, model_dir = served
    options: dict[str, Any] = {"temperature": 0.0, "max_tokens": MAX_TOKENS, "timeout": 30.0, **kwargs}
    return OpenAICompatible(base_url, str(model_dir), **options)


async def test_completions_stream_the_models_greedy_continuation(served: tuple[str, Path],
                                                                 local: tuple[Any, Any]) -> None:
    gen = generator(served, endpoint="completions")
    pieces = await texts(gen, GenerationRequest("Natalia sold 48/2 = ", prefix="24 clips in May.\n"))
    assert len(pieces) > 1
    assert "".join(pieces) == greedy(local, text="Natalia sold 48/2 = 24 clips in May.\n")


async def test_chat_streams_the_models_greedy_answer(served: tuple[str, Path], local: tuple[Any, Any]) -> None:
    gen = generator(served, endpoint="chat")
    pieces = await texts(gen, GenerationRequest("How many clips did Natalia sell?"))
    assert "".join(pieces) == greedy(local, messages=[{"role": "user", "content": "How many clips did Natalia sell?"}])


async def test_the_monitors_allowance_limits_the_tokens(served: tuple[str, Path], local: tuple[Any, Any]) -> None:
    gen = generator(served, endpoint="completions")
    pieces = await texts(gen, GenerationRequest("Let me check: ", max_new_tokens=3))
    assert "".join(pieces) == greedy(local, text="Let me check: ", max_new_tokens=3)


async def test_chat_rollback_falls_back_to_reasking_on_transformers_serve(served: tuple[str, Path],
                                                                          local: tuple[Any, Any]) -> None:
    gen = generator(served, endpoint="chat")  # continue_final_message="auto"
    request = GenerationRequest("Add 2 and 3.", prefix="2 + 3 = 6. Wait, that is wrong.\n")
    pieces = await texts(gen, request)
    assert gen.server_continues is False  # the server answered 422 to vLLM's fields; the re-ask went through
    assert "".join(pieces) == greedy(local, messages=[
        {"role": "user", "content": "Add 2 and 3."},
        {"role": "assistant", "content": "2 + 3 = 6. Wait, that is wrong.\n"},
        {"role": "user", "content": gen.continue_instruction},
    ])


async def test_a_closed_stream_leaves_the_server_ready_for_the_next_request(served: tuple[str, Path],
                                                                             local: tuple[Any, Any]) -> None:
    gen = generator(served, endpoint="completions", max_tokens=400)
    with anyio.fail_after(60):
        stream = gen.stream(GenerationRequest("The quick brown fox"))
        first: list[str] = []
        async for chunk in stream:
            first.append(chunk.text)
            if len(first) == 2:
                break
        await stream.aclose()
    assert len(first) == 2
    pieces = await texts(generator(served, endpoint="completions"), GenerationRequest("Step 1: "))
    assert "".join(pieces) == greedy(local, text="Step 1: ")


class RejectFirstAttempt(Verifier):
    """Fails everything generated before the first rollback, so that the run rolls back exactly once."""

    name = "reject-first"
    trigger = EveryNTokens(2)

    def extract(self, view: TraceView) -> TraceView:
        return view

    def check(self, state: TraceView) -> Fail | None:
        if state.epoch == 0 and state.text:
            return Fail("the first attempt is rejected", span=Span(0, len(state.text)), feedback="Start over.")
        return None


async def test_a_monitored_run_rolls_back_through_transformers_serve(served: tuple[str, Path],
                                                                     local: tuple[Any, Any]) -> None:
    gen = generator(served, endpoint="completions")
    with anyio.fail_after(120):
        result = await Monitor(gen, verifiers=[RejectFirstAttempt()]).run("Q: What is 2 + 3?\nA: ")
    feedback = "Wait, start over. Let me redo this step.\n"
    assert result.stop_reason is StopReason.LENGTH  # the tiny model writes until the server's max_tokens
    assert [(i.source, i.feedback, i.position) for i in result.interventions] == [("reject-first", feedback, 0)]
    assert result.text == feedback + greedy(local, text="Q: What is 2 + 3?\nA: " + feedback)
