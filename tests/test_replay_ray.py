"""The Ray engine on a local cluster (2 CPUs): the same result records, in the same order, as the local engine.

Starting a local cluster and its actors takes 10-40 s on a loaded 2-core machine, so the cluster tests are
marked slow (CI runs them); the cluster (conftest's ``ray_cluster``) is shut down when the module ends.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from interlock.monitor.cli import main as cli_main  # noqa: E402
from interlock.monitor.replay.output import ResultWriter  # noqa: E402
from interlock.monitor.replay.ray_engine import replay_dataset, replay_files  # noqa: E402
from interlock.monitor.replay.results import ReplayTotals  # noqa: E402


def _local_lines(paths: list[Path], verifier: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    cli_main(["replay", *map(str, paths), "-v", verifier, "--json"])
    lines = capsys.readouterr().out.splitlines()
    assert json.loads(lines[-1])["type"] == "totals"
    return lines[:-1]


def _generated(path: Path, n: int) -> Path:
    rng = random.Random(7)
    with path.open("w") as f:
        for i in range(n):
            a, b = rng.randint(1, 99), rng.randint(1, 99)
            record: dict[str, Any] = {"steps": [f"Add {a} + {b} = {a + b + (i % 5 == 0)}.", "So done."],
                                      "is_correct": i % 5 != 0}
            if i % 3:
                record["id"] = f"g{i}"  # the others take their id from the line, as the local reader numbers it
            f.write(json.dumps(record) + "\n")
            if i == 100:
                f.write("\n{not json\n")
        f.write('{"id": "cut", "text": "1 + 1 = 2')  # cut mid-line, no newline
    return path


def _totals(lines: list[str]) -> dict[str, Any]:
    totals = ReplayTotals()
    for line in lines:
        totals.add_record(json.loads(line))
    out = totals.to_dict()
    for key in ("seconds", "traces_per_s", "tokens_per_s"):
        out.pop(key)
    return out


@pytest.mark.slow
def test_a_few_hundred_records_give_the_local_engines_records_in_its_order(
        ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _generated(tmp_path / "gen.jsonl", 400)
    text = tmp_path / "answer.txt"
    text.write_text("We know 10 + 5 = 15.\nAnd 7 + 1 = 9.")
    local = _local_lines([data, text], "support:SumVerifier", capsys)
    got: list[str] = []
    out = tmp_path / "results.parquet"
    totals = replay_files([data, text], ["support:SumVerifier"], on_line=got.append, output=out,
                          split_bytes=16384)
    assert len(local) == 403 and got == local
    assert _totals(got) == {k: v for k, v in totals.to_dict().items()
                            if k not in ("seconds", "traces_per_s", "tokens_per_s")}
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    assert table.column("record").to_pylist() == local
    assert table.column("type").to_pylist().count("error") == 2
    failures = [n for n in table.column("failures").to_pylist() if n is not None]
    assert sum(failures) == 80 + 1  # every fifth sum is wrong, and so is 7 + 1 in the text file


@pytest.mark.slow
def test_parquet_input_and_a_dataset_of_your_own(ray_cluster: None, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": f"p{i}", "text": f"So {i} + {i} = {2 * i + (i == 3)}.", "model": "m"} for i in range(6)]
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    local = _local_lines([path], "support:SumVerifier", capsys)
    got: list[str] = []
    replay_files([path], ["support:SumVerifier"], on_line=got.append)
    assert got == local and [json.loads(line)["passed"] for line in got] == [True, True, True, False, True, True]
    result = replay_dataset(ray.data.from_items(rows), ["support:SumVerifier"])
    assert result.to_pandas()["record"].tolist() == [
        line.replace(f'"path": "{path}", "line": {i + 1}', '"path": "dataset", "line": 0')
        for i, line in enumerate(local)]


@pytest.mark.slow
def test_the_gsm8k_model_solutions_give_the_same_records(ray_cluster: None, shared_data: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    data = shared_data / "gsm8k" / "example_model_solutions.jsonl"
    local = _local_lines([data], "arithmetic", capsys)
    got: list[str] = []
    replay_files([data], ["arithmetic"], on_line=got.append)
    assert len(got) == len(local) > 5000
    assert got == local


def test_result_writer_round_trips_jsonl(tmp_path: Path) -> None:
    with ResultWriter(tmp_path / "r.jsonl") as w:
        w.write({"type": "error", "reason": "read", "id": None, "path": "x", "line": 1, "message": "m \ud800"})
    assert (tmp_path / "r.jsonl").read_text(encoding="utf-8") == (
        '{"type": "error", "reason": "read", "id": null, "path": "x", "line": 1, "message": "m \ufffd", '
        '"replaced": {"surrogates": 1}}\n')


@pytest.mark.slow
def test_the_command_line_engine_ray_prints_what_the_local_engine_prints(
        ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _generated(tmp_path / "gen.jsonl", 30)
    local = _local_lines([data], "support:SumVerifier", capsys)
    code = cli_main(["replay", str(data), "-v", "support:SumVerifier", "--json", "--engine", "ray"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1 and lines[:-1] == local
    assert json.loads(lines[-1])["read_errors"] == 1  # the cut last line
