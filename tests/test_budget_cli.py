"""``interlock budget`` as a person runs it: progress on a terminal's stderr while it works (never in stdout, so
never in ``--json``), the footnotes once after all the tables, no policy by default that text traces cannot
run, and a plot whose labels overlap nothing."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

import pytest
from interlock.monitor.budgets import TraceRecord, WhitespaceTokenizer, evaluate, parse_policies, tokenize_records
from interlock.monitor.budgets.evaluate import BudgetReport
from interlock.monitor.cli.main import main as cli

WS = WhitespaceTokenizer()
RIGHT = "We add 2 and 2 to get 4, so the total is \\boxed{4}. Check: 2 + 2 = \\boxed{4}. " + "Done. " * 30
FIXES = "The sum is \\boxed{5}. No wait, that is wrong: 2 + 2 = 4. So the answer is \\boxed{4}. Yes."


def _records() -> list[TraceRecord]:
    return tokenize_records([TraceRecord("a", "What is 2 + 2?", RIGHT, "4"),
                             TraceRecord("b", "What is 2 + 2?", FIXES, "4")], WS)


def _jsonl(path: Path) -> Path:
    path.write_text("".join(json.dumps({"id": r.id, "question": r.question, "text": r.text, "reference": "4"}) + "\n"
                            for r in _records()), encoding="utf-8")
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_is_told_each_stage_in_order(workers: int) -> None:
    calls: list[tuple[str, int, int]] = []
    evaluate(_records(), parse_policies(["cap:9", "pool:60"]), tokenizer=WS, chunk_tokens=1, workers=workers,
             progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert calls == [("tokenizing", 0, 2), ("replaying", 1, 2), ("replaying", 2, 2), ("pool:60", 1, 2),
                     ("pool:60", 2, 2)]


def test_on_a_terminal_progress_goes_to_stderr_and_stdout_holds_only_the_json(tmp_path: Path) -> None:
    traces = _jsonl(tmp_path / "t.jsonl")
    main_fd, term_fd = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"}
    try:
        proc = subprocess.Popen([sys.executable, "-m", "interlock", "budget", str(traces), "-p", "cap:9",
                                 "--tokenizer", "whitespace", "--workers", "1", "--json"],
                                stdout=subprocess.PIPE, stderr=term_fd, env=env, cwd=tmp_path)
        os.close(term_fd)
        out, _ = proc.communicate(timeout=120)
        deadline, seen = time.monotonic() + 5, b""
        while time.monotonic() < deadline:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:  # the terminal's other end closed: all of it read
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(main_fd)
    assert proc.returncode == 0
    assert [d["traces"] for d in json.loads(out)["datasets"]] == [2]  # stdout: the JSON and nothing else
    shown = seen.decode("utf-8", "replace")
    assert f"{traces}: " in shown and "0/2" in shown  # the bar was on the terminal


def test_tables_then_the_notes_once_and_no_entropy_by_default(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _jsonl(tmp_path / "a.jsonl"), _jsonl(tmp_path / "b.jsonl")
    assert cli(["budget", str(a), str(b), "--tokenizer", "whitespace", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    heads = [i for i, line in enumerate(out.splitlines()) if line.startswith("policy ")]
    assert len(heads) == 2 and "entropy" not in out
    assert out.count("saved: tokens not spent") == 1 and out.count("* forced:") == 1
    assert out.splitlines().index(next(x for x in out.splitlines() if x.startswith("* forced:"))) > heads[-1]
    assert cli(["budget", str(a), str(b), "--tokenizer", "whitespace", "--workers", "1", "-p", "cap:9",
                "-p", "entropy"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("n/a:")]
    assert notes == ["n/a: entropy on 2 traces of a.jsonl, 2 traces of b.jsonl: entropy needs per-token logprobs or "
                     "entropy; this trace has none (text traces never do: use interlock trace files recorded from a "
                     "model that reports them)"]


def test_plot_labels_overlap_no_label_no_marker_and_stay_in_their_panel() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from interlock.monitor.budgets.report import plot_figure

    def row(policy: str, tokens: float, accuracy: float) -> dict[str, object]:
        return {"policy": policy, "traces": 10, "mean_tokens": tokens, "accuracy": accuracy}

    # a crowd where the uncapped run, the larger caps and the pool all sit on one point, as on real data
    rows = [row("uncapped", 1400, 0.6), row("cap:1024", 840, 0.5), row("cap:2048", 1270, 0.55),
            row("cap:4096", 1400, 0.6), row("cap:8192", 1400, 0.6), row("pool:1024", 1390, 0.6),
            row("pool:2048", 1400, 0.6), row("loop", 985, 0.55), row("boxed:2", 1395, 0.6)]
    report = BudgetReport("a.jsonl", "whitespace", 16, [{}] * 10, policies=rows)
    fig = plot_figure([report, report])
    try:
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            panel = ax.get_window_extent(renderer)
            labels = [t.get_window_extent(renderer) for t in ax.texts]
            assert sorted(t.get_text() for t in ax.texts) == ["cap 1024", "cap 2048", "cap 4096", "cap 8192",
                                                              "pool 1024", "pool 2048"]
            for box in labels:
                assert panel.x0 <= box.x0 and box.x1 <= panel.x1 and panel.y0 <= box.y0 and box.y1 <= panel.y1
            for one, other in combinations(labels, 2):
                assert not one.overlaps(other), (one, other)
            for line in ax.get_lines():
                for x, y in zip(*line.get_data(), strict=True):
                    px, py = ax.transData.transform((x, y))
                    assert not any(b.x0 < px < b.x1 and b.y0 < py < b.y1 for b in labels)  # no label on a point
            legend = ax.get_legend().get_window_extent(renderer)
            assert legend.y1 <= panel.y0  # below the panel, over no point
    finally:
        plt.close(fig)
