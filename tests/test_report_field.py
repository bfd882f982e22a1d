"""The report on the imported field traces follows the raw data, not the field report's prose."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.analysis.deployment import analyse
from backend.analysis.importer import import_traces
from backend.analysis.report import write_report
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def field_run(tmp_path_factory) -> Path:
    folder = shared_path("traces", "seed-run-2025-12-29")
    return import_traces(folder, tmp_path_factory.mktemp("field") / "run").path


@pytest.fixture(scope="module")
def data(field_run: Path) -> dict:
    return analyse(field_run)


def test_timeline_of_the_field_run(data: dict):
    timeline = data["timeline"]
    assert timeline["activation_s"] == 641  # 10 min 41 s
    assert timeline["init_to_activating_s"] == 9
    assert timeline["bootstrap_s"] == 887  # 18:32:13 -> 18:47:00
    # first install phase (18:32:13) -> cluster_deploy succeeded (19:04:48); the prose's 32:41 ends at 19:04:54
    assert 32 * 60 + 35 <= timeline["total_s"] <= 32 * 60 + 41
    assert timeline["total_s"] == 1955 and timeline["total_end"] == "cluster_deploy completed"
    assert timeline["online_to_deploy_s"] == 328  # ONLINE comes about 5.5 min before cluster_deploy completes
    assert len(timeline["phases"]) == 11 and all(p["status"] == "done" for p in timeline["phases"])
    assert data["cluster"]["final_state"] == "ONLINE"
    assert [s["state"] for s in data["cluster"]["states"]] == ["INIT", "ACTIVATING", "ONLINE"]


def test_numbers_come_from_the_raw_samples(data: dict):
    assert data["cpu"]["steal_pct"]["max"] == pytest.approx(26.73)  # iostat, 18:37:08 (prose: 0.33 %)
    assert 0 < data["cpu"]["steal_pct"]["mean"] < 2 and data["cpu"]["steal_pct"]["p99"] > 1
    assert data["load"]["load1"]["max"] == pytest.approx(80.32)  # prose: 40.0
    assert data["memory"]["available_gib"]["min"] == pytest.approx(1.22, abs=0.01)  # prose: 4-5 GB
    assert data["memory"]["total_gib"] == pytest.approx(117.5, abs=0.05)
    assert data["memory"]["used_gib"]["max"] == pytest.approx(116.3, abs=0.05)  # prose: 105 GB
    assert data["disk"]["w_await_ms"]["max"] == pytest.approx(21.65)
    assert data["disk"]["r_await_ms"]["max"] == pytest.approx(29.0)
    heartbeat = data["heartbeat"]
    assert heartbeat["max_gap_s"] == pytest.approx(1.08, abs=0.01)
    assert heartbeat["gaps_over_2s"] == 0 and heartbeat["gaps_over_1s"] == 0
    biggest = data["containers"][0]
    assert biggest["name"] == "vast_platform_11.0.0.1-4200" and biggest["last_gib"] == pytest.approx(49.07, abs=0.01)


def test_the_successful_run_has_no_failure_diagnosis(data: dict):
    assert [d for d in data["diagnosis"] if d["severity"] == "critical"] == []
    assert [a for a in data["alerts"] if a["severity"] == "critical"] == []
    tight = next(d for d in data["diagnosis"] if d["id"] == "memory_tight")
    assert tight["changes"] == {"memory_gib": 131}  # a VM whose guest sees the field report's 128 GB+


def test_report_markdown_has_the_field_reports_layout(field_run: Path, tmp_path: Path, capsys):
    output = tmp_path / "report.md"
    assert write_report(str(field_run), json_out=False, output=str(output)) == 0
    text = output.read_text()
    for heading in ("# VAST Data 5.4 Loopback Cluster - Deployment Analysis", "## Executive Summary",
                    "## Environment Configuration", "## Timeline", "### CPU Steal", "### Load Average",
                    "### Memory Metrics", "#### Container Memory Usage", "#### Disk Latency",
                    "### Scheduling Gap Analysis", "## Faults and Recoveries", "## Workarounds and Fixes Applied",
                    "## Findings and Recommendations", "## Summary Statistics", "## Data Sources"):
        assert heading in text, heading
    assert "✅ SUCCESSFUL" in text
    assert "**Total: 32 min 35 s**" in text and "32 min 41 s" in text  # which end point, said in the report
    assert "| Max CPU steal | 0.33 % | 26.73 % |" in text  # the prose beside the data
    assert text.count("```text") >= 3  # steal, load and memory charts
    assert "18:48:39 | State: **ACTIVATING** | 10 min 41 s |" in text
    assert "wrote" in capsys.readouterr().out


def test_report_json_on_the_field_traces(field_run: Path, capsys):
    assert write_report(str(field_run), json_out=True) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cpu"]["steal_pct"]["max"] == pytest.approx(26.73)
    assert data["report_path"].endswith("report.md") and (field_run / "report.md").exists()
