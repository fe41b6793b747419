"""The budget evaluator on a local Ray cluster (2 CPUs): the same per-record dicts, in the same order, and the
same summary table as the local engine, through the Python API and the command line. Slow: a cluster and its
actors take 10-40 s to start on a loaded 2-core machine (CI runs them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from interlock.monitor.budgets import (  # noqa: E402
    BudgetError,
    TraceRecord,
    WhitespaceTokenizer,
    evaluate,
    parse_policies,
    summarise,
)
from interlock.monitor.budgets.ray_engine import evaluate_dataset, evaluate_on_ray  # noqa: E402
from interlock.monitor.chunks import Chunk  # noqa: E402
from interlock.monitor.cli.main import main as cli  # noqa: E402

WS = WhitespaceTokenizer()
RIGHT = ("We add 2 and 2 to get 4, so the total is \\boxed{4}. Check: 2 + 2 = \\boxed{4}. " + "Done. " * 30)
FIXES = "The sum is \\boxed{5}. No wait, that is wrong: 2 + 2 = 4. So the answer is \\boxed{4}. Yes."
WRONG = "It is \\boxed{4}. Hmm, \\boxed{3}."
POLICIES = ["cap:10,13", "boxed:2", "boxed:1", "loop", "entropy:threshold=0.3:window=4"]


def _records() -> list[TraceRecord]:
    texts = [RIGHT, FIXES, WRONG]
    recs = [TraceRecord(f"r{i}", f"What is 2 + {i % 4}?", texts[i % 3], "4" if i % 5 else "3",
                        recorded_correct=None if i % 2 else True) for i in range(15)]
    chunks = tuple(Chunk(f" w{i}", (i,), (-2.0 if i < 5 else -0.01,)) for i in range(20))  # recorded logprobs
    recs.insert(7, TraceRecord("chunked", "q", "".join(c.text for c in chunks), "4", chunks=chunks))
    return recs


@pytest.mark.slow
def test_the_python_api_gives_the_local_engines_records_order_and_table(ray_cluster: None) -> None:
    recs = _records()
    policies = parse_policies(POLICIES)
    names = [p.name for p in policies]
    local = evaluate(recs, policies, tokenizer=WS, chunk_tokens=1)
    dataset = ray.data.from_items([r.to_dict() for r in recs], override_num_blocks=4)
    results = evaluate_dataset(dataset, policies, tokenizer=WS, chunk_tokens=1, batch_size=3)
    assert [r["id"] for r in results] == [r.id for r in recs]
    assert results == local.records
    assert summarise(results, names) == local.policies
    assert local.records[7]["policies"]["entropy:threshold=0.3:window=4"]["tokens"] == 16  # not n/a: it ran
    assert sum(r["policies"]["cap:10"]["tokens"] for r in results) != sum(r["tokens"] for r in results)

    with_pool = parse_policies(["pool:60", *POLICIES])
    with pytest.raises(BudgetError, match="policy 'pool:60' shares one budget"):
        evaluate_dataset(dataset, with_pool, tokenizer=WS, chunk_tokens=1)
    # evaluate_on_ray runs the pool on the driver after the map: the same report as evaluate's
    report = evaluate_on_ray(recs, with_pool, tokenizer="whitespace", chunk_tokens=1, source="s")
    expected = evaluate(recs, with_pool, tokenizer="whitespace", chunk_tokens=1, source="s")
    assert report.records == expected.records and report.policies == expected.policies
    assert report.to_dict() == expected.to_dict()
    assert all(list(r["policies"]) == [p.name for p in with_pool] for r in report.records)


@pytest.mark.slow
def test_the_command_line_engine_ray_prints_and_writes_what_the_local_engine_does(
        ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "t.jsonl"
    lines = [json.dumps({"id": r.id, "question": r.question, "text": r.text, "reference": r.reference})
             for r in _records() if r.chunks is None]
    data.write_text("\n".join([*lines[:6], "{not json", *lines[6:]]) + "\n")
    args = ["budget", str(data), "-p", "cap:10,13", "-p", "pool:60", "-p", "boxed:2", "--tokenizer", "whitespace",
            "--chunk-tokens", "1", "--json"]
    assert cli([*args, "--workers", "1", "--records", str(tmp_path / "local.jsonl")]) == 1
    local = capsys.readouterr()
    assert cli([*args, "--engine", "ray", "--records", str(tmp_path / "ray.jsonl")]) == 1
    got = capsys.readouterr()
    assert got.out == local.out and got.err == local.err
    assert "t.jsonl:7" in got.err
    (dataset,) = json.loads(got.out)["datasets"]
    assert dataset["traces"] == 15 and [r["policy"] for r in dataset["policies"]] == [
        "uncapped", "cap:10", "cap:13", "pool:60", "boxed:2"]
    assert (tmp_path / "ray.jsonl").read_text() == (tmp_path / "local.jsonl").read_text()
    assert cli(["budget", str(data), "-p", "cap:5", "--address", "auto"]) == 2
    assert "--address joins a Ray cluster" in capsys.readouterr().err
