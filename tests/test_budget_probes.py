"""Probe policies of ``interlock budget``: recorded traces replayed with their probes asked once of a probe model
(a stand-in server, a local model) and kept in a cache, so a second run, another k or another threshold makes no
model call; and the pool that learns from the probes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from interlock import AnswerProbe, Chunk, Monitor
from interlock.generators import Scripted
from interlock.monitor.budgets import TraceRecord, evaluate, parse_policies, read_records
from interlock.monitor.budgets.probes import HTTPProber, LocalProber, ProbeCache, probe_key, probe_request
from interlock.monitor.cli import main
from interlock.monitor.governors import BudgetPool
from interlock.monitor.governors.answer_probe import DEFAULT_PROBE_ANSWER
from interlock.monitor.governors.budget_pool import probe_disagreement
from interlock.monitor.governors.probe_rules import same_answer
from interlock.monitor.phases import ANSWER, THINKING
from probe_server import ProbeServer, RecheckingModel, served_in_thread


def trace(rechecks: int, preamble: str = "") -> str:
    model = RecheckingModel(rechecks=rechecks, preamble=preamble)
    return f"<think>\n{model.thinking}\n</think>\n\n{model.final}"


@pytest.fixture
def records(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    rows = [{"id": "short", "question": "What is 6 times 7?", "text": trace(6), "reference": "42"},
            {"id": "late", "question": "What is 6 times 7? Think first.", "reference": "42",
             "text": trace(12, preamble="Let me think.\n\nHmm, six sevens, maybe 41.")}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def server() -> Any:
    stand_in = ProbeServer(RecheckingModel(), delay=0)
    with served_in_thread(stand_in.app()) as url:
        yield stand_in, url


def budget_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(["budget", *argv, "--tokenizer", "whitespace", "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["policy"]: r for r in report["datasets"][0]["policies"]}


def test_the_second_run_makes_no_request(records: Path, server: Any, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    stand_in, url = server
    cache = tmp_path / "probes.jsonl"
    args = [str(records), "-p", "probe:k=3", "--probe-base-url", url, "--probe-model", "reasoner",
            "--probe-cache", str(cache)]
    code, first, err = budget_json(capsys, *args)
    asked = len(stand_in.bodies)
    assert code == 0 and asked == len(stand_in.probe_requests()) > 0
    assert f"probes: {asked} asked of reasoner@openai-compatible" in err
    code, second, err = budget_json(capsys, *args)
    assert code == 0 and len(stand_in.bodies) == asked  # no request: every probe came from the cache
    assert "probes: 0 asked" in err and second == first
    # another k and a DEER threshold are other replays of the same probes: still no request
    code, other, _ = budget_json(capsys, str(records), "-p", "probe:k=2", "-p", "deer:conf=0.9",
                                 "--probe-base-url", url, "--probe-model", "reasoner", "--probe-cache", str(cache))
    assert code == 0 and len(stand_in.bodies) == asked
    got = rows(other)
    assert got["probe:k=2"]["mean_tokens"] < rows(first)["probe:k=3"]["mean_tokens"]
    assert got["deer:conf=0.9"]["right"] == got["uncapped"]["right"] == 2
    # the cache file: one probe a line, with the trace, the position and the probe's chunks
    lines = [json.loads(line) for line in cache.read_text().splitlines()]
    assert len(lines) == asked and {e["trace"] for e in lines} == {"short", "late"}
    entry = lines[0]
    assert entry["model"] == "reasoner@openai-compatible" and entry["settings"]["answer"] == DEFAULT_PROBE_ANSWER
    assert entry["chunks"][0]["text"] in ("42}", "41}") and entry["chunks"][0]["logprobs"]


def test_probe_policies_stop_where_the_probes_agree_and_score_the_probed_answer(records: Path, server: Any,
                                                                                tmp_path: Path) -> None:
    stand_in, url = server
    recs = [r for r in read_records(records) if isinstance(r, TraceRecord)]
    cache = ProbeCache(tmp_path / "c.jsonl")
    report = evaluate(recs, parse_policies(["probe:k=2", "deer", "boxed:1", "pool:60:learn+probe:k=2"]),
                      probe_cache=cache, prober=HTTPProber(url, "reasoner"))
    by_id = {r["id"]: r for r in report.records}
    short = by_id["short"]["policies"]["probe:k=2"]
    # two "Wait" turns probed, both answered 42 in one token: the thinking ends at the second turn
    text = recs[0].text
    waits = [i for i in range(len(text)) if text.startswith("Wait,", i)]
    assert (short["probes"], short["probe_tokens"], short["answer"], short["answer_kind"]) == (2, 2, "42", "probe")
    assert waits[1] < short["chars"] < waits[2]  # it stops with the chunk that showed the second turn
    assert short["reason"] == "governor" and short["by"] == "answer_probe" and short["correct"] is True
    assert short["tokens"] == short["kept"] + 2
    late = by_id["late"]["policies"]["deer"]
    # "Hmm" before the answer is found: unsure (p = 0.30), no stop; the first "Wait" after it: sure, stop
    assert (late["probes"], late["answer"], late["correct"]) == (2, "42", True)
    requests = stand_in.probe_requests()
    assert requests and all(b["messages"][-1]["content"] == DEFAULT_PROBE_ANSWER for b in requests)
    # the thinking was sent back in the reasoning field (without its tags): a prefix of a recorded thinking
    thinkings = [r.text.split("</think>")[0].removeprefix("<think>\n") for r in recs]
    for body in requests:
        sent = body["messages"][-1]["reasoning_content"].lstrip("\n")
        assert sent and any(t.startswith(sent) for t in thinkings)
    row = {r["policy"]: r for r in report.policies}
    assert row["probe:k=2"]["saved_pct"] > 50 and row["probe:k=2"]["false_stops"] == 0
    assert row["boxed:1"]["saved_pct"] < 5  # the text states its answer only at the end
    # with a pool the chunks are cut to each share: its probes fall elsewhere, and were asked too
    pooled = row["pool:60:learn+probe:k=2"]
    assert pooled["not_applicable"] == 0 and pooled["traces"] == 2 and pooled["probes"] >= 2


def test_a_missing_probe_without_a_model_is_a_clear_error(records: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "empty.jsonl"
    assert main(["budget", str(records), "-p", "probe", "--tokenizer", "whitespace", "--probe-cache",
                 str(cache)]) == 2
    assert f"the probe cache {cache} is empty: give a probe model" in capsys.readouterr().err
    cache.write_text(json.dumps({"key": "k", "model": "m@local", "chunks": [{"text": "1}"}]}) + "\n{bad json\n")
    assert main(["budget", str(records), "-p", "probe", "--tokenizer", "whitespace", "--probe-cache",
                 str(cache)]) == 2
    err = capsys.readouterr().err
    assert "needs" in err and "probes that the cache" in err and "--probe-base-url URL --probe-model NAME" in err
    assert ProbeCache(cache).skipped == 1  # the unreadable line is counted and skipped, the good one kept
    assert main(["budget", str(records), "-p", "cap:10", "--probe-model", "default", "--tokenizer",
                 "whitespace"]) == 2
    assert "are for probe policies" in capsys.readouterr().err


def test_deer_without_logprobs_is_not_applicable(records: Path, server: Any, tmp_path: Path) -> None:
    _, url = server
    recs = [TraceRecord("short", "What is 6 times 7?", trace(4), "42")]
    report = evaluate(recs, parse_policies(["deer", "probe:k=2"]), probe_cache=ProbeCache(tmp_path / "n.jsonl"),
                      prober=HTTPProber(url, "reasoner", logprobs=False))
    row = {r["policy"]: r for r in report.policies}
    assert row["deer"]["not_applicable"] == 1 and "no logprobs" in row["deer"]["why_not"]
    assert row["probe:k=2"]["traces"] == 1  # agreement needs no logprobs


def test_probe_requests_close_the_recorded_thinking_with_its_own_tag() -> None:
    text = "<|begin_of_thought|>\nx is 3.\n\nWait, yes.\n<|end_of_thought|>\n\nSo 3."
    runs = ((0, THINKING), (text.index("\n\nSo"), ANSWER))
    at = text.index("Wait")
    request = probe_request("q", text, runs, at, suffix="", answer="\\boxed{", max_tokens=5)
    assert request.prefix == text[:at] + "<|end_of_thought|>\\boxed{"
    assert request.phases == ((0, THINKING), (len(text[:at]) + len("<|end_of_thought|>"), ANSWER))
    plain = probe_request("q", "x is 3.\n\nWait", (), 9, suffix="", answer="\\boxed{", max_tokens=5)
    assert (plain.prefix, plain.phases) == ("x is 3.\n\n\\boxed{", ())
    assert probe_key("m", {"a": 1}, request) != probe_key("m", {"a": 2}, request) != probe_key("n", {"a": 1}, request)


def test_a_local_probe_model_fills_the_cache(tmp_path: Path) -> None:
    from tiny_model import build_tiny_model

    model, tokenizer = build_tiny_model()
    prober = LocalProber(model, tokenizer)
    recs = [TraceRecord("t", "What is 2 + 3?", "We add.\n\nWait, 2 + 3 = 5.\n\nWait, yes 5.\n\nDone.", "5")]
    cache = ProbeCache(tmp_path / "local.jsonl")
    evaluate(recs, parse_policies(["probe:k=2:at=wait/paragraph:tokens=3"]), probe_cache=cache, prober=prober,
             chunk_tokens=1)
    assert prober.requests == len(cache) == 3  # one probe at each turn, asked once, in order
    again = LocalProber(model, tokenizer)
    evaluate(recs, parse_policies(["probe:k=3:at=wait/paragraph:tokens=3"]), probe_cache=ProbeCache(cache.path),
             prober=again, chunk_tokens=1)
    assert again.requests == 0
    entries = list(ProbeCache(cache.path).entries())
    assert [e["position"] for e in entries] == sorted(e["position"] for e in entries)
    assert all(sum(c["tokens"] for c in e["chunks"]) <= 3 for e in entries)


# -- the pool that learns --------------------------------------------------------------------------------------------
def test_probe_disagreement() -> None:
    assert probe_disagreement(["1"], same_answer) is None
    assert probe_disagreement(["1", "1", "1"], same_answer) == 0
    assert probe_disagreement(["1", "2", None, "2"], same_answer) == 1
    assert probe_disagreement(["1", "1.0", "2"], same_answer) == 0.5


class Probed(Scripted):
    """A scripted thinking whose n-th fork answers ``answers(n)``."""

    def __init__(self, pieces: list[Chunk], answers: Any) -> None:
        super().__init__(pieces, forks={"": "x"})
        self.answers = answers
        self.forked = 0

    def continuation(self, request: Any) -> list[Any]:
        if request.purpose == "fork":
            self.forked += 1
            return [self.answers(self.forked)]
        return super().continuation(request)


async def test_a_share_whose_probes_disagree_draws_more() -> None:
    """Two runs of the same prompt and length, one whose probes agree and one whose probes keep changing: with
    learn=True the pool's draws for the second are four times those for the first; without it, alike."""
    text = "".join(f"Step {i}. Wait, again.\n" for i in range(12))
    pieces = [Chunk(w + " ", phase=THINKING) for w in text.split(" ")]
    seen = {}
    for learn in (False, True):
        pool = BudgetPool(total=400, min_share=20, draw=10, learn=learn, force_answer=False, runs=2)
        for name, answers in (("agree", lambda n: "7}"), ("change", lambda n: f"{n}}}")):
            probe = AnswerProbe(k=50, at=("wait",))
            share = pool.governor_for("q", probe=probe)
            await Monitor(Probed(pieces, answers), governors=[probe, share]).run("q")
            assert len(probe.last_probes) >= 10  # (a probe still out when the run ends is cancelled)
            seen[(learn, name)] = (share.learned_factor, pool.draw_tokens(share), share.to_dict().get("learned"))
    assert seen[(True, "agree")] == (0.5, 5, 0.5) and seen[(True, "change")] == (2.0, 20, 2.0)
    assert seen[(False, "agree")] == seen[(False, "change")] == (1.0, 10, None)
