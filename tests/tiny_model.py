"""A tiny, randomly initialised causal LM with a real tokenizer, built offline and deterministically.

Tests need a real transformers model (real KV cache, real tokenizer, real chat template) without a hub and
without the seconds it takes to load the embedded default. This module builds one in well under a second:

- a byte-level BPE tokenizer trained in code on a small built-in corpus (so any text round-trips byte for
  byte), wrapped in ``PreTrainedTokenizerFast`` with ChatML-style special tokens and a chat template;
- a ``LlamaForCausalLM`` with a tiny config, initialised from a fixed seed.

Use ``build_tiny_model()`` for the objects, ``save_tiny_model(path)`` for a folder (safetensors + tokenizer)
that ``AutoModelForCausalLM.from_pretrained(path)`` loads, or the pytest fixtures ``tiny_model_dir``
(module-scoped folder) and ``tiny_model`` (the objects)::

    from tiny_model import tiny_model_dir  # noqa: F401  (tests/ is on sys.path; this re-exports the fixture)

    def test_something(tiny_model_dir):
        gen = Transformers(tiny_model_dir)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "CHAT_TEMPLATE",
    "CORPUS",
    "EOS_TOKEN",
    "SPECIAL_TOKENS",
    "THINKING_CHAT_TEMPLATE",
    "build_tiny_model",
    "build_tiny_tokenizer",
    "save_tiny_model",
    "tiny_model",
    "tiny_model_dir",
]

EOS_TOKEN = "<|im_end|>"
BOS_TOKEN = "<|im_start|>"
PAD_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN)

# ChatML, as SmolLM2-Instruct uses; supports continuing a final assistant message (continue_final_message).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# A thinking model's template (Qwen3's switch, DeepSeek-R1's opened thinking): the generation prompt opens the
# thinking, or with enable_thinking=false writes an empty one, closed.
THINKING_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\n\n</think>\n\n' }}"
    "{% else %}{{ '<think>\n' }}{% endif %}{% endif %}"
)
THINK_TOKENS = ("<think>", "</think>")

# Small, but with digits, arithmetic, punctuation and newlines, so that merges cover the texts tests use.
CORPUS = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "How many clips did Natalia sell altogether in April and May?",
    "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May.",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting.",
    "Weng earns 12/60 = $0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $10.",
    "Let me check: 2 + 3 = 5. 7 * 8 = 56. 100 - 42 = 58. 9 / 3 = 3.",
    "Wait, the step is wrong. Let me redo this step.\nThe answer is 42.",
    "The quick brown fox jumps over the lazy dog. Is the answer correct? Yes!",
    "Step 1: add the numbers. Step 2: multiply by 3. Step 3: subtract 7.",
    "x = 3, y = 4, so x^2 + y^2 = 25 and the hypotenuse is 5.",
)

_MODEL_CONFIG: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}


def build_tiny_tokenizer(vocab_size: int = 384, *, thinking: bool = False) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on :data:`CORPUS`, with a chat template; ``thinking``:
    the thinking template and ``<think>``/``</think>`` as tokens of their own."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS) + (list(THINK_TOKENS) if thinking else []),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(list(CORPUS), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=EOS_TOKEN,
        bos_token=BOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=None,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = THINKING_CHAT_TEMPLATE if thinking else CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(seed: int = 0, *, thinking: bool = False) -> tuple[Any, Any]:
    """``(model, tokenizer)``: a seeded tiny ``LlamaForCausalLM`` in eval mode and its tokenizer (``thinking``: a
    thinking model's template and tags)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer(thinking=thinking)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **_MODEL_CONFIG,
    )
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model, tokenizer


def save_tiny_model(path: str | Path, seed: int = 0, *, thinking: bool = False) -> Path:
    """Write the tiny model (safetensors) and its tokenizer to ``path``; returns the folder."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    model, tokenizer = build_tiny_model(seed, thinking=thinking)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the tiny model and tokenizer, built once per test module."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def tiny_model() -> tuple[Any, Any]:
    """``(model, tokenizer)`` objects of the tiny model, built once per test module."""
    return build_tiny_model()
