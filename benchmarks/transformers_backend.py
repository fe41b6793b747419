"""The local transformers backend, measured side by side in one process. Prints JSON.

- ``load``: the embedded GGUF model converted from scratch (into a fresh cache folder) vs. loaded from the
  converted cache (transformers already imported, so only loading is timed).
- ``decode``: tokens/s of our decode loop (worker thread per token, logprob and entropy on) vs. HF
  ``model.generate`` (greedy, the same prompt and number of tokens), alternating runs, medians.
- ``rollback``: time to the first token after a rollback near the end of a long trace: our cache crop
  (only the feedback runs through the model) vs. a full re-encode of prompt + prefix (a fresh context).

    python benchmarks/transformers_backend.py [--model PATH] [--tokens 64] [--trace-tokens 400] [--repeats 3]
    python benchmarks/transformers_backend.py --skip-convert   # use the user's cache, no cold conversion
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from interlock import GenerationRequest
from interlock.generators.transformers import CACHE_ENV, Transformers, default_model_path

PROMPT = "Explain step by step how to compute 17 * 23, then check the result."
FEEDBACK = "Wait, 17 * 23 is 391. Let me redo this step.\n"


def time_load(path: Path, skip_convert: bool) -> dict[str, Any]:
    import transformers  # noqa: F401  (import cost is not load cost)

    out: dict[str, Any] = {"model": str(path)}
    if path.suffix != ".gguf":
        start = time.perf_counter()
        Transformers(path)
        out["load_seconds"] = round(time.perf_counter() - start, 3)
        return out
    with tempfile.TemporaryDirectory() as cache:
        cache_env = os.environ.get(CACHE_ENV) if skip_convert else cache
        previous = os.environ.get(CACHE_ENV)
        if cache_env is not None:
            os.environ[CACHE_ENV] = cache_env
        try:
            if not skip_convert:
                with contextlib.redirect_stderr(io.StringIO()):
                    start = time.perf_counter()
                    Transformers(path)
                    out["convert_seconds"] = round(time.perf_counter() - start, 3)
            start = time.perf_counter()
            Transformers(path)
            out["cached_load_seconds"] = round(time.perf_counter() - start, 3)
        finally:
            if previous is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = previous
    if "convert_seconds" in out:
        out["speedup"] = round(out["convert_seconds"] / out["cached_load_seconds"], 1)
    return out


async def ours(gen: Transformers, tokens: int) -> tuple[float, list[int]]:
    gen.reset()  # a cold cache each run, as model.generate has
    start = time.perf_counter()
    ids = [i async for c in gen.stream(GenerationRequest(PROMPT, max_new_tokens=tokens)) for i in c.token_ids or ()]
    return time.perf_counter() - start, ids


def theirs(gen: Transformers, tokens: int) -> tuple[float, list[int]]:
    import torch

    context = gen.formatter.ids(PROMPT)
    start = time.perf_counter()
    with torch.inference_mode():
        out = gen.model.generate(torch.tensor([context]), max_new_tokens=tokens, min_new_tokens=tokens,
                                 do_sample=False, pad_token_id=gen.tokenizer.eos_token_id)
    return time.perf_counter() - start, [int(t) for t in out[0, len(context):]]


def _eos_ids(gen: Transformers) -> list[int]:
    eos = gen.model.generation_config.eos_token_id
    ids = eos if isinstance(eos, list) else [eos]
    return [int(i) for i in ids if i is not None] + [int(gen.tokenizer.eos_token_id)]


async def time_decode(gen: Transformers, tokens: int, repeats: int) -> dict[str, Any]:
    mine: list[float] = []
    hf: list[float] = []
    same = True
    compared = 0
    await ours(gen, 4)  # warm up both paths (thread pool, first-call allocations)
    theirs(gen, 4)
    for _ in range(repeats):
        t, ids_a = await ours(gen, tokens)
        mine.append(t)
        t, ids_b = theirs(gen, tokens)
        hf.append(t)
        # model.generate's min_new_tokens forbids EOS while our loop (EOS ignored) may pick it: compare before it
        eos = set(_eos_ids(gen))
        n = next((k for k, i in enumerate(ids_a) if i in eos), len(ids_a))
        compared = n
        same = same and ids_a[:n] == ids_b[:n]
    ours_tps = tokens / statistics.median(mine)
    hf_tps = tokens / statistics.median(hf)
    return {"tokens": tokens, "ours_tokens_per_s": round(ours_tps, 2), "generate_tokens_per_s": round(hf_tps, 2),
            "ratio_ours_over_generate": round(ours_tps / hf_tps, 3), "same_tokens": same,
            "same_tokens_compared": compared,
            "note": "wall time includes the prompt's prefill for both"}


async def time_rollback(gen: Transformers, trace_tokens: int, repeats: int) -> dict[str, Any]:
    base = Transformers(gen.model, gen.tokenizer, max_new_tokens=trace_tokens, eos_token_ids=())
    trace = "".join([c.text async for c in base.stream(GenerationRequest(PROMPT))])
    cut = int(len(trace) * 0.9)
    prefix = trace[:cut] + FEEDBACK
    crop: list[float] = []
    full: list[float] = []
    reused = 0
    for _ in range(repeats):
        # restore the long trace in the cache, then roll back into it
        [c async for c in base.stream(GenerationRequest(PROMPT, prefix=trace, max_new_tokens=1))]
        before = base.forwarded_tokens
        start = time.perf_counter()
        [c async for c in base.stream(GenerationRequest(PROMPT, prefix=prefix, max_new_tokens=1))]
        crop.append(time.perf_counter() - start)
        encoded = base.forwarded_tokens - before
        reused = len(base.context_ids) - encoded
        fresh = Transformers(gen.model, gen.tokenizer, max_new_tokens=1, eos_token_ids=())
        start = time.perf_counter()
        [c async for c in fresh.stream(GenerationRequest(PROMPT, prefix=prefix))]
        full.append(time.perf_counter() - start)
    return {"trace_tokens": trace_tokens, "cut_at_chars": cut, "context_tokens": len(base.context_ids),
            "tokens_reused_from_cache": reused, "crop_seconds": round(statistics.median(crop), 4),
            "full_reencode_seconds": round(statistics.median(full), 4),
            "speedup": round(statistics.median(full) / statistics.median(crop), 1)}


async def main_async(args: argparse.Namespace) -> None:
    path = Path(args.model) if args.model else default_model_path()
    load = time_load(path, args.skip_convert)
    with contextlib.redirect_stderr(io.StringIO()):
        gen = Transformers(path, eos_token_ids=())
    import torch

    result = {"device": str(gen.model.device), "torch_threads": torch.get_num_threads(), "load": load,
              "decode": await time_decode(gen, args.tokens, args.repeats),
              "rollback": await time_rollback(gen, args.trace_tokens, args.repeats)}
    print(json.dumps(result, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a model folder or .gguf file (default: the embedded SmolLM2-135M)")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--trace-tokens", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-convert", action="store_true", help="do not time a cold GGUF conversion")
    anyio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()
