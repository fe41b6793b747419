"""The offline budget evaluator on small fixture traces: exact stop positions and scores, the per-record dict,
the batch pool, fidelity to the monitor, and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from interlock import Monitor
from interlock.generators import FromIterator
from interlock.monitor.budgets import (
    BudgetError,
    Policy,
    TraceRecord,
    WhitespaceTokenizer,
    evaluate,
    evaluate_record,
    parse_policies,
    read_records,
    replay_governors,
    tokenize_records,
)
from interlock.monitor.chunks import Chunk
from interlock.monitor.cli.main import main as cli
from interlock.monitor.governors import LoopGuard, TokenBudget

# The first box is word 13, the second identical box word 19; then 30 words of a loop.
RIGHT = ("We add 2 and 2 to get 4, so the total is \\boxed{4}. Check: 2 + 2 = \\boxed{4}. "
         + "Done. " * 30)
# Boxes a wrong answer first, then corrects itself.
FIXES = "The sum is \\boxed{5}. No wait, that is wrong: 2 + 2 = 4. So the answer is \\boxed{4}. Yes."
WS = WhitespaceTokenizer()


def record(ident: str, text: str, reference: str = "4", question: str = "What is 2 + 2?") -> TraceRecord:
    return tokenize_records([TraceRecord(ident, question, text, reference)], WS)[0]


def word_end(text: str, n: int) -> int:
    """Where the first ``n`` whitespace tokens of ``text`` end (a token is a word and the spaces after it)."""
    starts = WS.starts(text)
    return starts[n] if n < len(starts) else len(text)


def test_each_policy_stops_at_an_exact_token_and_is_scored_on_the_answer_stated_by_then() -> None:
    rec = record("r", RIGHT)
    out = evaluate_record(rec, parse_policies(["cap:10", "cap:13", "boxed:2", "boxed:1", "loop"]), chunk_tokens=1)
    assert out["tokens"] == 49 and out["correct"] is True and out["runaway"] is True
    p = out["policies"]
    assert (p["cap:10"]["tokens"], p["cap:10"]["reason"], p["cap:10"]["answer"]) == (10, "budget", "4")
    # the ten words hold "2", "2", "4," - the last number stated is 4 (right, by luck: the label says "result")
    assert p["cap:10"]["answer_kind"] == "result" and p["cap:10"]["correct"] is True
    assert (p["cap:13"]["tokens"], p["cap:13"]["answer"], p["cap:13"]["answer_kind"]) == (13, "4", "boxed")
    assert p["boxed:1"]["tokens"] == 13 and p["boxed:1"]["chars"] == word_end(RIGHT, 13)
    assert p["boxed:2"]["tokens"] == 19 and RIGHT[:p["boxed:2"]["chars"]].endswith("= \\boxed{4}. ")
    assert p["boxed:2"]["by"] == "repeated_boxed" and p["boxed:2"]["correct"] is True
    # "Done." repeated: the run covers 30 characters with its sixth copy (5 + 5 * 6), token 19 + 6
    assert p["loop"]["tokens"] == 25 and p["loop"]["reason"] == "governor" and p["loop"]["by"] == "loop_guard"
    assert all(not o["forced"] for o in p.values())
    json.dumps(out)  # a plain dict


def test_a_false_stop_and_a_gain_are_told_apart() -> None:
    rec = record("f", FIXES)
    out = evaluate_record(rec, parse_policies(["boxed:1", "cap:4"]), chunk_tokens=1)
    assert out["correct"] is True and out["answer"] == "4" and out["answer_kind"] == "boxed"
    first = out["policies"]["boxed:1"]
    assert (first["tokens"], first["answer"], first["correct"]) == (4, "5", False)  # a right answer lost
    report = evaluate([rec, record("w", "It is \\boxed{4}. Hmm, \\boxed{3}.")], parse_policies(["boxed:1"]),
                      tokenizer=WS, chunk_tokens=1)
    uncapped, boxed1 = report.policies
    assert (uncapped["right"], uncapped["tokens"]) == (1, 25)
    assert (boxed1["right"], boxed1["false_stops"], boxed1["gained"], boxed1["tokens"]) == (1, 1, 1, 7)
    assert boxed1["saved_pct"] == round(100 * 18 / 25, 1)


def test_a_forced_answer_is_labelled_and_scored_on_the_last_stated_answer() -> None:
    out = evaluate_record(record("r", RIGHT), parse_policies(["cap:30:force"]), chunk_tokens=1)
    forced = out["policies"]["cap:30:force"]
    # 16 tokens are held back for the forced answer: the reasoning stops at 14
    assert (forced["tokens"], forced["forced"], forced["reason"], forced["answer"]) == (14, True, "budget", "4")


def test_entropy_stop_runs_on_recorded_logprobs_and_is_not_applicable_without() -> None:
    sure, unsure = -0.01, -2.0
    chunks = tuple(Chunk(f" w{i}", (i,), (unsure if i < 5 else sure,)) for i in range(20))
    rec = TraceRecord("t", "q", "".join(c.text for c in chunks), "4", chunks=chunks)
    policies = parse_policies(["entropy:threshold=0.3:window=4"])
    out = evaluate_record(rec, policies)
    # tokens 5.. are certain: the fourth of them (token 9) completes the window; min_tokens 16 waits for token 16
    assert out["policies"]["entropy:threshold=0.3:window=4"]["tokens"] == 16
    na = evaluate_record(record("r", RIGHT), policies)["policies"]["entropy:threshold=0.3:window=4"]
    assert na["na"] is not None and "logprobs" in na["na"]


def test_the_pool_shares_one_budget_over_the_batch_in_order() -> None:
    recs = [record("a", RIGHT), record("b", FIXES)]
    report = evaluate(recs, parse_policies(["pool:60"]), tokenizer=WS, chunk_tokens=1)
    spent = [r["policies"]["pool:60"]["tokens"] for r in report.records]
    assert sum(spent) <= 120 and spent[1] == 20  # the short trace is finished within what is left
    with pytest.raises(BudgetError, match="shares a pool"):
        evaluate_record(recs[0], parse_policies(["pool:60"]))


async def test_the_offline_driver_stops_where_the_monitor_stops() -> None:
    starts = WS.starts(RIGHT)
    pieces = [RIGHT[s:e] for s, e in zip(starts, [*starts[1:], len(RIGHT)], strict=True)]

    async def chunks():  # type: ignore[no-untyped-def]
        for p in pieces:
            yield Chunk(p)

    for make in (lambda: [LoopGuard(nudge=None, force_answer=False)], lambda: [TokenBudget(max_total=17)]):
        live = await Monitor(FromIterator(chunks()), governors=make()).run("q")
        offline = replay_governors(make(), "q", RIGHT, starts=starts, chunk_tokens=1)
        assert RIGHT[:offline.chars] == live.text and offline.tokens == live.tokens.kept


def test_policy_specs_expand_sweeps_and_reject_mistakes() -> None:
    names = [p.name for p in parse_policies(["loop+cap:512,1024", "pool:64", "converge:k=3:read=number"])]
    assert names == ["loop+cap:512", "loop+cap:1024", "pool:64", "converge:k=3:read=number"]
    assert parse_policies(["pool:64"])[0].pool_tokens == 64
    for bad, message in (("cap", "token count"), ("nope", "unknown policy part"), ("loop:k=2", "takes no option"),
                         ("converge:k=1", "k must be >= 2"), ("loop,cap:5", "unknown policy part"),
                         ("cap:5+cap:5,6+", "empty policy part"), ("loop+loop:lines=0,1", "only cap and pool")):
        with pytest.raises(BudgetError, match=message):
            parse_policies([bad])
    with pytest.raises(BudgetError, match="given twice"):
        parse_policies(["cap:5", "cap:5"])
    custom = Policy("mine", lambda: [TokenBudget(max_total=3)])
    assert evaluate_record(record("r", RIGHT), [custom], chunk_tokens=1)["policies"]["mine"]["tokens"] == 3


def test_records_round_trip_as_plain_dicts_for_a_distributed_map() -> None:
    rec = record("r", RIGHT)
    again = TraceRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert again == rec
    policies = parse_policies(["boxed:2"])
    assert evaluate_record(rec.to_dict(), policies) == evaluate_record(rec, policies)


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_fields_are_configurable_and_bad_records_are_named(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "t.jsonl", [
        {"idx": 1, "problem": "q", "code": [RIGHT], "gt": "4", "score": [True]},
        {"idx": 2, "problem": "q", "code": ["x"]},
        {"uid": "z", "out": "It is \\boxed{4}.", "ref": 4},
    ])
    got = list(read_records(f))
    assert isinstance(got[0], TraceRecord) and (got[0].id, got[0].reference, got[0].recorded_correct) == ("1", "4",
                                                                                                         True)
    assert "no reference answer" in str(got[1]) and ":2" in str(got[1])
    assert "no trace text" in str(got[2])
    from interlock.monitor.budgets import RecordFields

    (third,) = [r for r in read_records(f, RecordFields(id="uid", trace="out", reference="ref"))
                if isinstance(r, TraceRecord) and r.id == "z"]
    assert third.reference == "4" and third.text == "It is \\boxed{4}."


def test_the_command_prints_json_writes_a_plot_and_fails_on_bad_input(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    f = write_jsonl(tmp_path / "t.jsonl", [{"id": "a", "question": "q", "text": RIGHT, "reference": "4"},
                                           {"id": "b", "question": "q", "text": FIXES, "reference": "4"}])
    png = tmp_path / "plot.png"
    code = cli(["budget", str(f), "-p", "cap:10,13", "-p", "boxed:2", "--tokenizer", "whitespace",
                "--chunk-tokens", "1", "--workers", "1", "--json", "--plot", str(png), "--records",
                str(tmp_path / "out.jsonl")])
    assert code == 0
    (dataset,) = json.loads(capsys.readouterr().out)["datasets"]
    rows = {r["policy"]: r for r in dataset["policies"]}
    assert list(rows) == ["uncapped", "cap:10", "cap:13", "boxed:2"]
    assert (rows["uncapped"]["tokens"], rows["uncapped"]["right"]) == (69, 2)
    assert (rows["boxed:2"]["tokens"], rows["boxed:2"]["right"], rows["boxed:2"]["runaways_stopped"]) == (39, 2, 1)
    assert rows["cap:10"]["tokens"] == 20 and rows["cap:10"]["false_stops"] == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    assert cli(["budget", str(f), "-p", "cap:x", "--tokenizer", "whitespace"]) == 2
    assert "'cap': 'x' is not a number" in capsys.readouterr().err
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "a", "text": RIGHT, "reference": "4"}, {"id": "b"}])
    assert cli(["budget", str(bad), "-p", "cap:5", "--tokenizer", "whitespace", "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert "bad.jsonl:2" in captured.err and "cap:5" in captured.out


async def test_an_interlock_trace_file_is_replayed_with_its_recorded_chunks(tmp_path: Path) -> None:
    from interlock.generators import Scripted

    path = tmp_path / "run.jsonl"
    await Monitor(Scripted(FIXES), meta={"reference": "4", "id": "fixes"}).run("What is 2 + 2?", record=path)
    (rec,) = list(read_records(path))
    assert isinstance(rec, TraceRecord) and rec.chunks is not None
    assert (rec.id, rec.reference, rec.question, rec.text) == ("fixes", "4", "What is 2 + 2?", FIXES)
    out = evaluate_record(rec, parse_policies(["boxed:2", "cap:4"]))
    assert out["tokens"] == len(rec.chunks) and out["correct"] is True
    assert out["policies"]["cap:4"]["tokens"] == 4 and out["policies"]["cap:4"]["answer"] == "5"
    assert out["policies"]["boxed:2"]["reason"] == "complete"
    bare = tmp_path / "bare.jsonl"
    await Monitor(Scripted("x")).run("q", record=bare)
    (error,) = list(read_records(bare))
    assert "no reference answer" in str(error)


def test_worker_processes_give_the_same_report_as_one_process() -> None:
    recs = [record("a", RIGHT), record("b", FIXES), record("c", "It is \\boxed{4}. Hmm, \\boxed{3}.")]
    policies = parse_policies(["boxed:2", "loop", "cap:9"])
    pooled = evaluate(recs, policies, tokenizer=WS, chunk_tokens=1, workers=2)
    alone = evaluate(recs, policies, tokenizer=WS, chunk_tokens=1, workers=1)
    assert pooled.records == alone.records and pooled.policies == alone.policies
