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
