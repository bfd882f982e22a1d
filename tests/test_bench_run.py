"""bench/run: one table with every figure beside its goal, as JSON too; a failing bench becomes a
row that says why instead of sinking the table. Shapes only: speed goals live in bench/, not here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.perf_table import Bench, Options, run_bench, table

REPO = Path(__file__).resolve().parent.parent
ROW_KEYS = {"bench", "figure", "measured", "unit", "goal", "kind", "better", "factor", "verdict", "note"}


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`bench/run --quick --only report` (the cheapest bench), once for the module."""
    out = tmp_path_factory.mktemp("bench") / "perf.json"
    result = subprocess.run([str(REPO / "bench" / "run"), "--quick", "--only", "report", "--json", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    return out, result


def test_quick_report_bench_writes_the_table_as_json(quick_report):
    out, result = quick_report
    assert result.returncode in (0, 1), result.stderr
    data = json.loads(out.read_text())
    assert data["mode"] == "quick"
    assert {"cores", "python", "kernel", "cpu_model", "commit"} <= set(data["machine"])
    assert data["rows"] and all(set(r) == ROW_KEYS for r in data["rows"])
    assert {r["bench"] for r in data["rows"]} == {"report"}
    assert set(data["benches"]) == {"report"} and data["benches"]["report"]["runs"]
    synthetic = [r for r in data["rows"] if "synthetic" in r["figure"] and r["unit"] == "s"]
    assert synthetic and all(isinstance(r["measured"], float) for r in synthetic)
    field = [r for r in data["rows"] if "field traces" in r["figure"]]
    assert field and all(r["verdict"] in ("met", "MISSED", "info", "skipped") for r in field)
    assert "| bench | figure | measured | goal / reference |" in result.stdout
    assert data["table"] in result.stdout


def test_a_failing_bench_is_a_row_that_says_why():
    broken = Bench("broken", "a bench that crashes",
                   lambda options: [("only", ["-c", "import sys; sys.exit('boom: no such device')"], 30)],
                   lambda results, options: [])
    rows, status = run_bench(broken, Options(quick=True, repeat=None))
    assert [r["verdict"] for r in rows] == ["failed"]
    assert "boom: no such device" in rows[0]["note"]
    assert status["errors"] and not status["runs"]
    assert "failed" in table(rows)


def test_an_unknown_bench_name_is_refused():
    result = subprocess.run([sys.executable, str(REPO / "bench" / "run"), "--only", "nope"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "unknown bench nope" in result.stderr


def test_a_bench_that_overruns_is_stopped_and_reported():
    stuck = Bench("stuck", "a bench that hangs",
                  lambda options: [("only", ["-c", "import time; time.sleep(60)"], 0.5)],
                  lambda results, options: [])
    rows, status = run_bench(stuck, Options(quick=True, repeat=None))
    assert rows[0]["verdict"] == "failed" and "timed out" in rows[0]["note"]
    assert status["errors"] == ["only: timed out after 0 s"]


def test_a_saved_result_gives_the_same_table_without_measuring(quick_report):
    out, _ = quick_report
    again = subprocess.run([str(REPO / "bench" / "run"), "--from", str(out)], cwd=REPO, capture_output=True,
                           text=True, timeout=60)
    assert json.loads(out.read_text())["table"] in again.stdout


def test_benches_measured_again_go_into_a_saved_result_with_their_own_header(quick_report, tmp_path):
    out, _ = quick_report
    saved = tmp_path / "saved.json"
    saved.write_text(out.read_text())
    again = subprocess.run([str(REPO / "bench" / "run"), "--quick", "--only", "report", "--into", str(saved)],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode in (0, 1), again.stderr
    data = json.loads(saved.read_text())
    assert [u["benches"] for u in data["updates"]] == [["report"]]
    assert data["updates"][0]["header"].startswith("measured again")
    assert data["header"] == json.loads(out.read_text())["header"]  # the first run's header stays
    assert f"report: {data['updates'][0]['header']}" in again.stdout
    refused = subprocess.run([str(REPO / "bench" / "run"), "--only", "report", "--into", str(saved)], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--into" in refused.stderr


def test_the_agent_rows_judge_the_worst_of_the_outside_runs():
    from bench.perf_table import agent_rows

    def run(agent_s: float, load: float) -> dict:
        return {"load1_start": load, "agent_cpu_s": agent_s, "field_cpu_s": 0.75, "ratio": 0.75 / agent_s,
                "self_parts_s": {"tick": agent_s * 0.8, "sample": agent_s * 0.1},
                "stop": {"real_ms": 300.1, "seen_ms": 300.3, "how": "stop", "ok": True}}

    saved = {"seconds": 30.0, "python": "/x/python3.6 (3.6.15)", "invocation": "python3.6 agent.py",
             "as_root": True, "method": "cgroup1 cpuacct.usage"}
    results = [("default", dict(saved, runs=[run(0.1, 0.3)])), ("default", dict(saved, runs=[run(0.2, 2.0)]))]
    rows = {r["figure"].split(" (")[0]: r for r in agent_rows(results, Options(quick=False, repeat=None))}
    worst = rows["field set / agent, same window: the worst run"]
    assert worst["measured"] == pytest.approx(3.75) and worst["verdict"] == "MISSED"  # one run under 5x sinks it
    assert "load1 at start 0.3, 2.0" in worst["note"]
    assert "as root" in rows["monitoring agent, `python3.6 agent.py`"]["note"]
    assert rows["300 ms SIGSTOP of the agent inside the window: worst abs. error"]["verdict"] == "met"
