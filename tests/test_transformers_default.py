"""The embedded default model (SmolLM2-135M-Instruct) end to end: a monitored arithmetic answer is corrected."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from interlock import Fail, GenerationRequest, Monitor, Step, StopReason, TokenBudget, list_verifiers, verifier

pytestmark = pytest.mark.slow

CLAIM = re.compile(r"(\d+)\s*([*x×+-])\s*(\d+)\s*=\s*(\d+)")


@verifier(name="products")
def products(step: Step) -> Fail | None:
    """Integer claims "a op b = c" (op one of + - * x ×), checked exactly; a test's own small verifier."""
    for m in CLAIM.finditer(step.text):
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        value = a + b if op == "+" else a - b if op == "-" else a * b
        if value != c:
            return Fail(f"{a} {op} {b} is {value}, not {c}", span=step.to_trace(*m.span()),
                        feedback=f"{a} {op} {b} is {value}", claim=f"{a} {op} {b} = {c}")
    return None


@pytest.fixture(scope="module")
def conversion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, Path]]:
    """The default model converted from GGUF into a fresh cache folder: ``(generator, stderr, cache dir)``."""
    from interlock.generators.transformers import CACHE_ENV, ModelNotFoundError, Transformers, default_model_path

    try:
        default_model_path()
    except ModelNotFoundError as exc:
        pytest.skip(str(exc))
    cache = tmp_path_factory.mktemp("interlock-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(cache))
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            gen = Transformers.default(max_new_tokens=120)
        yield gen, err.getvalue(), cache


@pytest.fixture(scope="module")
def smollm(conversion: tuple[Any, str, Path]) -> Any:
    return conversion[0]


async def test_the_converted_weights_are_cached_and_load_again_identically(
        conversion: tuple[Any, str, Path]) -> None:
    from interlock.generators.transformers import CACHE_ENV, Transformers, cache_dir

    gen, said, cache = conversion
    # two lines of its own and no third-party progress bar
    assert said.splitlines() == [
        "interlock: converting SmolLM2-135M-Instruct.Q4_1.gguf from GGUF, once...",
        said.splitlines()[1]]
    assert re.fullmatch(rf"interlock: converted in \d+ s; cached in {re.escape(str(cache))}/models/"
                        r"SmolLM2-135M-Instruct\.Q4_1-[0-9a-f]{16} \(later loads skip the conversion\)",
                        said.splitlines()[1])
    folders = list((cache / "models").iterdir())
    assert len(folders) == 1 and (folders[0] / ".complete").is_file()
    assert (folders[0] / "model.safetensors").is_file() and (folders[0] / "tokenizer.json").is_file()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(cache))
        assert cache_dir() == cache
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            again = Transformers.default(max_new_tokens=8)
        assert "converting" not in err.getvalue()
    request = GenerationRequest("Name a colour.", max_new_tokens=8)
    first = [c async for c in gen.stream(request)]
    second = [c async for c in again.stream(request)]
    assert [c.token_ids for c in first] == [c.token_ids for c in second]
    assert "".join(c.text for c in first) == "".join(c.text for c in second)


async def test_monitored_arithmetic_on_the_embedded_model(smollm: Any) -> None:
    names = {info.name for info in list_verifiers()}
    verifiers: list[Any] = [products, "arithmetic"] if "arithmetic" in names else [products]
    result = await Monitor(smollm, verifiers=verifiers, governors=[TokenBudget(max_total=200)]).run(
        "What is 12*7?")
    # greedy SmolLM2-135M answers "12*7 = 89"; the monitor rolls that step back and the model redoes it
    applied = [i for i in result.interventions if i.applied]
    assert applied, result.text
    assert "12*7 = 89" in applied[0].removed_text
    assert "84" in applied[0].feedback
    assert result.text.startswith(applied[0].feedback)
    assert "= 89" not in result.text
    assert "84" in result.text
    assert result.stop_reason is StopReason.COMPLETE
    assert result.tokens.discarded > 0 and result.tokens.total <= 200
    assert smollm.capabilities.kv_rollback
