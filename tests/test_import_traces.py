"""`import-traces`: a hand-made monitoring folder becomes a run directory that `report` can read.

The fixtures here are small folders written by the tests in the field scripts' formats; the test at
the end reads the real field traces from ../shared when they are present.
"""

from __future__ import annotations

import calendar
import json
from pathlib import Path

import pytest

from backend import events as ev
from backend.analysis.deployment import analyse
from backend.analysis.importer import import_traces
from backend.errors import BadInput
from backend.run.journal import RunDir
from tests.conftest import shared_path
from tui.cli import main


def utc(clock: str, day: str = "2026-03-01") -> float:
    y, mo, d = (int(x) for x in day.split("-"))
    h, mi, s = (float(x) for x in clock.split(":"))
    return calendar.timegm((y, mo, d, int(h), int(mi), 0, 0, 0, 0)) + s


def iostat_block(clock12: str, steal: float, r_await: float) -> str:
    return (f"03/01/2026 {clock12}\n"
            "avg-cpu:  %user   %nice %system %iowait  %steal   %idle\n"
            f"          20.00    0.00   10.00    1.00   {steal:5.2f}   {69 - steal:5.2f}\n\n"
            "Device            r/s     w/s     rkB/s     wkB/s   rrqm/s   wrqm/s  %rrqm  %wrqm r_await w_await "
            "aqu-sz rareq-sz wareq-sz  svctm  %util\n"
            f"sda             10.00   20.00    400.00    800.00     0.00     0.00   0.00   0.00 {r_await:7.2f}"
            "    1.50   0.10    40.00    40.00   0.10   5.00\n\n")


ANSI_SPINNER_LOG = (
    "[2026-03-01 10:00:01] [STEP] Phase 1: System checks\n"
    "[2026-03-01 10:00:01] [INFO] Management IP: 10.1.2.3\n"
    "[2026-03-01 10:00:02] [STEP] Phase 8: Running VAST bootstrap\n"
    "unpacking ./vastdata_release_1.vast.tar.gz\n"
    "Done, VMS is up \n"
    "[2026-03-01 10:00:04] [INFO] Bootstrap completed \u2713\n"
    "[2026-03-01 10:00:04] [STEP] Phase 9: Creating loopback cluster\n"
    "Creating Cluster lb-test...\r\n"
    "\x1b[?25l\r[2026-03-01 10:00:05] Cluster lb-test state: INIT ... /\r[2026-03-01 10:00:05] Cluster lb-test "
    "state: INIT ... -\r\n"
    "\x1b[0;32m\r[2026-03-01 10:00:06] Cluster lb-test state: ACTIVATING ... |\r\x1b[0m\n"
    "\r[2026-03-01 10:00:09] Cluster lb-test state: ONLINE ... /\r\n"
    "\r[2026-03-01 10:00:10] Task cluster_deploy (2) succeeded (runtime=5.00) ... \\\r\n"
    "[2026-03-01 10:00:10] [STEP] Phase 10: Waiting for cluster to come online\n"
    "[2026-03-01 10:00:11] [INFO] Cluster is ONLINE\n"
)


def write_folder(root: Path, install_log: str = ANSI_SPINNER_LOG) -> Path:
    mon = root / "monitoring"
    mon.mkdir(parents=True)
    (root / "install").mkdir()
    (root / "install" / "vast_install_test.log").write_text(install_log)
    beats = [utc("10:00:00") + i + 0.002 * i for i in range(11)]
    beats[5:] = [t + 0.296 for t in beats[5:]]  # the tick after 10:00:04 came 296 ms late
    (mon / "heartbeat.log").write_text("".join(
        f"2026-03-01 10:00:{int(t - utc('10:00:00')):02d}.{int(round((t % 1) * 1000)):03d}\n" for t in beats))
    header = "Linux 4.18.0-test (guest) \t03/01/2026 \t_x86_64_\t(8 CPU)\n\n"
    blocks = [iostat_block(f"10:00:{s:02d} AM", 9.0 if s != 3 else 18.0, 2.0 + s) for s in range(11) if s != 6]
    (mon / "iostat.log").write_text(header + "".join(blocks))
    vm_header = ("procs -----------memory---------- ---swap-- -----io---- -system-- ------cpu----- -----timestamp-----\n"
                 " r  b   swpd   free   buff  cache   si   so    bi    bo   in   cs us sy id wa st                 UTC\n")
    (mon / "vmstat.log").write_text(vm_header + "".join(
        f" 3  0      0 1000 4188 3191    0    0   0     4  121  112 30 10 55  0  5 2026-03-01 10:00:{s:02d}\n"
        for s in range(11)))
    (mon / "loadavg.log").write_text("".join(
        f"2026-03-01 10:00:{s:02d}.500 {s + 0.5:.2f} {s / 2:.2f} 0.10 {s}/900 1000\n" for s in range(11)))
    memory = ""
    for s, available_kb in ((0, 60_000_000), (5, 30_000_000), (10, 3_000_000)):
        memory += (f"=== 2026-03-01 10:00:{s:02d}.500 ===\n"
                   "              total        used        free      shared  buff/cache   available\n"
                   "Mem:           61Gi        1Gi        60Gi       1.0Mi       1.0Gi        57Gi\n"
                   f"MemTotal:       64000000 kB\nMemFree:        {available_kb} kB\nMemAvailable:   {available_kb} kB\n\n")
    (mon / "memory.log").write_text(memory)
    (mon / "docker_stats.log").write_text(
        "=== 2026-03-01 10:00:03.200 ===\nNAME   CPU %   MEM USAGE / LIMIT   MEM %   NET I/O   BLOCK I/O   PIDS\n"
        "vast_vms   5.00%   1.5GiB / 61GiB   2.46%   0B / 0B   0B / 0B   10\n\n"
        "=== 2026-03-01 10:00:09.900 ===\nNAME   CPU %   MEM USAGE / LIMIT   MEM %   NET I/O   BLOCK I/O   PIDS\n"
        "vast_vms   5.00%   2GiB / 61GiB   3.28%   0B / 0B   0B / 0B   10\n"
        "vast_platform_x   150.00%   40GiB / 61GiB   65.57%   0B / 0B   0B / 0B   300\n")
    (mon / "ss_6001.log").write_text(
        "=== 2026-03-01 10:00:04.000 ===\nState Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n\n"
        "=== 2026-03-01 10:00:08.000 ===\nState Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n"
        "ESTAB 0 0 11.0.0.1:42000 11.0.0.1:6001\nESTAB 0 10 11.0.0.1:6001 11.0.0.1:42000\n")
    (mon / "dmesg_live.log").write_text(
        "[Sun Mar  1 09:50:00 2026] Linux version 4.18.0-test (builder) #1 SMP\n"
        "[Sun Mar  1 10:00:08 2026] Out of memory: Killed process 4242 (vast_platform) total-vm:1kB\n")
    return root


def read_events(run: RunDir) -> list[ev.Event]:
    return list(run.events())


@pytest.fixture
def imported(tmp_path: Path) -> RunDir:
    return import_traces(write_folder(tmp_path / "traces"), tmp_path / "run")


def test_install_phases_states_and_task_become_events(imported: RunDir):
    events = read_events(imported)
    steps = [(e.step, e.ts - utc("10:00:00")) for e in events if isinstance(e, ev.StepStarted)]
    assert steps == [("system_checks", 1), ("bootstrap", 2), ("cluster_create", 4), ("wait_online", 10)]
    finished = {e.step: (e.ok, e.ts - utc("10:00:00")) for e in events if isinstance(e, ev.StepFinished)}
    assert finished == {"system_checks": (True, 2), "bootstrap": (True, 4), "cluster_create": (True, 10),
                        "wait_online": (True, 11)}
    states = [(e.state, e.previous, e.ts - utc("10:00:00")) for e in events if isinstance(e, ev.ClusterStateChanged)]
    assert states == [("INIT", "", 5), ("ACTIVATING", "INIT", 6), ("ONLINE", "ACTIVATING", 9)]
    task = next(e for e in events if isinstance(e, ev.VtaskChanged))
    assert (task.name, task.task_id, task.state, task.runtime_s) == ("cluster_deploy", 2, "COMPLETED", 5.0)
    finished_run = next(e for e in events if isinstance(e, ev.RunFinished))
    assert finished_run.outcome == "online"
    assert imported.read_meta()["status"] == "finished"


def test_install_log_is_stripped_of_ansi_and_spinner_repaints(imported: RunDir):
    text = (imported.path / "install.log").read_text()
    assert "\x1b" not in text and "\r" not in text
    assert text.count("Cluster lb-test state: INIT") == 1
    assert "[2026-03-01 10:00:06] Cluster lb-test state: ACTIVATING\n" in text
    appended = [e for e in read_events(imported) if isinstance(e, ev.InstallLogAppended)]
    assert appended and appended[-1].offset == len(text.encode())


def test_heartbeat_lateness_kernel_lines_and_facts(imported: RunDir):
    events = read_events(imported)
    stalls = [e for e in events if isinstance(e, ev.StallDetected)]
    assert len(stalls) == 1
    assert stalls[0].length_ms == pytest.approx(298, abs=1)  # 296 ms late + the loop's 2 ms drift
    assert stalls[0].interval_ms == 1000
    kernel = [e for e in events if isinstance(e, ev.KernelMessageSeen)]
    assert [(k.match, k.source) for k in kernel] == [("oom", "dmesg_live.log")]
    facts = next(e for e in events if isinstance(e, ev.TracesImported)).facts
    assert facts["mgmt_ip"] == "10.1.2.3" and facts["cluster_name"] == "lb-test" and facts["ncpu"] == 8
    assert facts["heartbeat"]["interval_s"] == 1.0


def test_samples_merge_sources_per_second_without_carrying_values(imported: RunDir):
    samples = {int(s.sample["t"] - utc("10:00:00")): s.sample for s in imported.samples()}
    assert sorted(samples) == list(range(11))
    assert samples[3]["cpu"]["steal"] == 18.0 and samples[3]["cpu"]["ncpu"] == 8  # iostat
    assert samples[6]["cpu"] == {"user": 30.0, "sys": 10.0, "idle": 55.0, "iowait": 0.0, "steal": 5.0, "ncpu": 8}
    assert "cpu" not in samples[0]  # iostat's and vmstat's first reports average since boot
    assert samples[4]["disks"]["sda"]["r_await"] == 6.0
    assert samples[2]["load"] == [2.5, 1.0, 0.1] and samples[2]["runnable"] == 2 and samples[2]["tasks"] == 900
    assert [s for s in samples if "mem" in samples[s]] == [0, 5, 10]  # memory.log every 5 s, never carried
    assert samples[10]["mem"]["available"] == 3_000_000 * 1024
    assert samples[10]["mem"]["used"] == (64_000_000 - 3_000_000) * 1024
    assert samples[3]["containers"] == {"vast_vms": {"mem": 1.5 * 1024**3, "limit": 61 * 1024**3, "cpu_pct": 5.0}}
    assert set(samples[9]["containers"]) == {"vast_vms", "vast_platform_x"}
    assert samples[8]["tcp_6001"] == {"states": {"ESTAB": 2}, "recv_q_max": 0, "send_q_max": 10}
    assert samples[5]["hb"]["max_ms"] == pytest.approx(298, abs=1)


def test_the_analysis_of_a_hand_made_run(imported: RunDir):
    data = analyse(imported.path)
    assert data["timeline"]["total_s"] == 9  # Phase 1 at 10:00:01 -> cluster_deploy at 10:00:10
    assert data["timeline"]["activation_s"] == 3
    assert data["cpu"]["steal_pct"]["max"] == 18.0
    assert data["memory"]["available_gib"]["min"] == pytest.approx(3_000_000 / 1024**2, abs=0.01)
    assert data["disk"]["r_await_ms"]["max"] == 12.0
    assert data["heartbeat"]["max_gap_s"] == pytest.approx(1.298, abs=0.002)
    assert data["heartbeat"]["gaps_over_1s"] == 0
    assert [d["id"] for d in data["diagnosis"]] == ["oom"]


NOHUP_STYLE = (
    "\n==============================================\nVAST Data 5.4 - Proxmox Installation Script\n"
    "Log file: /home/centos/vast_install_20260301_100001.log\n\n"
    "\x1b[0;34m==>\x1b[0m \x1b[0;34mPhase 1: System checks\x1b[0m\n"
    "\x1b[0;32m[INFO]\x1b[0m Management IP: 10.1.2.3\n"
    "\x1b[0;34m==>\x1b[0m \x1b[0;34mPhase 8: Running VAST bootstrap\x1b[0m\n"
    "unpacking ./vastdata_release_1.vast.tar.gz\n"
    "\x1b[0;34m==>\x1b[0m \x1b[0;34mPhase 9: Creating loopback cluster\x1b[0m\n"
    "[2026-03-01 10:14:48: 0d8f] Starting vman.sh with 'vcli' command\n"
    "\r[2026-03-01 10:16:18] Cluster lb-test state: INIT ... /\r\n"
    "\r[2026-03-01 10:16:27] Cluster lb-test state: ACTIVATING ... |\r\n"
    "\r[2026-03-01 10:29:00] Task cluster_deploy (2) failed (runtime=700.00) ... |\r\n"
)


def test_colour_only_phase_headers_take_their_time_from_the_log(tmp_path: Path):
    folder = tmp_path / "traces"
    (folder / "install").mkdir(parents=True)
    (folder / "install" / "nohup_install.log").write_text(NOHUP_STYLE)
    run = import_traces(folder, tmp_path / "run")
    events = read_events(run)
    starts = {e.step: e.ts for e in events if isinstance(e, ev.StepStarted)}
    assert starts["system_checks"] == utc("10:00:01")  # from the log file's name
    assert starts["bootstrap"] == utc("10:00:01")  # no stamped line before it
    assert starts["cluster_create"] == utc("10:14:48")  # the first stamped line inside the phase
    failed = [e for e in events if isinstance(e, ev.StepFinished) and not e.ok]
    assert [e.step for e in failed] == ["cluster_create"] and "failed" in failed[0].error
    assert next(e for e in events if isinstance(e, ev.RunFinished)).outcome == "failed"
    data = analyse(run.path)
    assert data["run"]["samples"] == 0
    assert {d["id"] for d in data["diagnosis"]} == {"deploy_failed"}
    assert data["timeline"]["total_s"] is None


def test_odd_and_truncated_lines_are_counted_not_fatal(tmp_path: Path):
    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / "loadavg.log").write_text("2026-03-01 10:00:00.5 1.0 1.0 1.0 1/2 3\n\x00\x01binary\n2026-03-01 10:0")
    (folder / "heartbeat.log").write_bytes(b"2026-03-01 10:00:00.000\n\xff\xfe\n2026-03-01 10:00:01.000\n")
    run = import_traces(folder, tmp_path / "run")
    files = {f["name"]: f for f in next(e for e in run.events() if isinstance(e, ev.TracesImported)).files}
    assert files["loadavg.log"]["records"] == 1 and files["loadavg.log"]["skipped"] == 2
    assert files["heartbeat.log"]["records"] == 2 and files["heartbeat.log"]["skipped"] == 1
    stall = next(e for e in run.events() if isinstance(e, ev.StallDetected))
    assert stall.length_ms == 0.0  # the worst interval is kept even when it was not late


def test_a_folder_without_monitor_files_is_bad_input(tmp_path: Path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("nothing to see")
    with pytest.raises(BadInput, match="holds none of the field monitor's files"):
        import_traces(empty, tmp_path / "run")
    assert main(["import-traces", str(empty), "--run-dir", str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err
    assert "holds none" in err and "Traceback" not in err
    assert main(["import-traces", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "run3")]) == 2


def test_an_existing_run_directory_is_not_overwritten(tmp_path: Path, imported: RunDir):
    with pytest.raises(BadInput):
        import_traces(write_folder(tmp_path / "again"), imported.path)


def test_the_cli_imports_and_reports(tmp_path: Path, capsys):
    folder = write_folder(tmp_path / "traces")
    assert main(["import-traces", str(folder), "--run-dir", str(tmp_path / "run")]) == 0
    assert main(["report", str(tmp_path / "run"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert data["cluster"]["final_state"] == "ONLINE"
    assert (tmp_path / "run" / "report.md").exists()


# --- the field traces ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def field(tmp_path_factory) -> RunDir:
    folder = shared_path("traces", "seed-run-2025-12-29")
    return import_traces(folder, tmp_path_factory.mktemp("field") / "run")


def test_the_field_traces_import_as_the_field_run(field: RunDir):
    events = read_events(field)
    imported = next(e for e in events if isinstance(e, ev.TracesImported))
    kinds = {f["kind"] for f in imported.files}
    assert {"heartbeat", "loadavg", "memory", "docker_stats", "vmstat", "iostat", "dmesg", "ss", "install"} <= kinds
    assert all(f["skipped"] == 0 for f in imported.files)
    assert imported.facts["install_log"] == "vast_install_20251229_183213.log"  # the one with stamped phases
    assert imported.facts["ncpu"] == 12 and imported.facts["build"] == "release-5-4-0-2043819"
    phases = [e for e in events if isinstance(e, ev.StepStarted)]
    assert len(phases) == 11 and phases[0].ts == utc("18:32:13", "2025-12-29")
    bootstrap = next(e for e in events if isinstance(e, ev.StepFinished) and e.step == "bootstrap")
    assert bootstrap.ts == utc("18:47:00", "2025-12-29")  # 14 min 47 s after 18:32:13
    assert [e.state for e in events if isinstance(e, ev.ClusterStateChanged)] == ["INIT", "ACTIVATING", "ONLINE"]
    samples = list(field.samples())
    assert 3100 < len(samples) < 3300
    with_mem = sum(1 for s in samples if "mem" in s.sample)
    assert 600 < with_mem < 700  # memory.log every 5 s: never carried forward
