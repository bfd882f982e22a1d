"""Crafted run directories and traces folders (issue 12, items 2, 7 and the file parts of 11): every
write in a run directory refuses symlinks and stays inside it; `report`, `--resume` and
`import-traces` read regular files only, line by line with limits, and say what they skipped;
event text cannot make lines of its own in report.md; a damaged run.json is bad input."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from backend import events as ev
from backend.run.journal import Journal, RunDir
from tests.recorded_runs import write_recorded_run
from tests.security_support import REPO, stop_lab_guests
from tests.test_import_traces import write_folder

T = 1_800_000_000.0
GIB = 1024**3
LAB_ANSWERS = "proxmox: {url: lab}\nvm: {name: vast-lb, vcpus: 12, memory_gib: 120, disk_gib: 1000}\n"


def write_run(path: Path, events: list[ev.Event]) -> RunDir:
    run = RunDir.create(path)
    journal = Journal(run)
    for event in events:
        journal(event)
    journal.close()
    return run


def vlb(*args: str, timeout: float = 120.0, memory: int | None = None,
        cwd: Path = REPO) -> subprocess.CompletedProcess:
    """`vast-loopback ARGS` in a child process, its address space capped at `memory` bytes if given."""

    def limit() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run([sys.executable, "-W", "ignore", "-m", "tui.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit, env={**os.environ, "PYTHONPATH": str(REPO)})


def victim(tmp_path: Path, name: str = "victim.txt") -> tuple[Path, bytes, int]:
    path = tmp_path / name
    path.write_bytes(b"not yours to touch\n")
    path.chmod(0o644)
    return path, path.read_bytes(), path.stat().st_mode


def sparse(path: Path, size: int = GIB) -> Path:
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


# --- item 2: writes never follow a symlink and stay inside the run directory ----------------------


def test_report_never_writes_through_a_symlink_planted_in_the_run_directory(tmp_path: Path):
    run = write_recorded_run(tmp_path / "run", "success")
    outside, content, mode = victim(tmp_path)
    other, other_content, other_mode = victim(tmp_path, "other.txt")
    (run.path / "report.md.tmp").symlink_to(outside)
    (run.path / "report.md").symlink_to(other)
    result = vlb("report", str(run.path))
    assert result.returncode == 0, result.stderr
    assert outside.read_bytes() == content and outside.stat().st_mode == mode
    assert other.read_bytes() == other_content and other.stat().st_mode == other_mode
    report = run.path / "report.md"
    assert not report.is_symlink() and report.stat().st_mode & 0o777 == 0o600
    assert report.read_text().startswith("# VAST Data 5.4 Loopback Cluster")


def test_a_resume_never_writes_run_json_through_a_planted_symlink(tmp_path: Path):
    run = RunDir.create(tmp_path / "run")
    outside, content, mode = victim(tmp_path)
    (run.path / "run.json.tmp").symlink_to(outside)
    run.update_meta(status="stopped")
    assert outside.read_bytes() == content and outside.stat().st_mode == mode
    assert run.read_meta()["status"] == "stopped"
    assert sorted(p.name for p in run.path.iterdir()) == ["run.json", "run.json.tmp"]  # no temp file left


def test_a_journal_file_that_is_a_symlink_is_refused(tmp_path: Path):
    from backend.errors import BadInput

    run = RunDir.create(tmp_path / "run")
    outside, content, _ = victim(tmp_path)
    (run.path / "events.jsonl").symlink_to(outside)
    with pytest.raises(BadInput, match="symbolic link"):
        Journal(run)
    assert outside.read_bytes() == content


async def test_the_result_screen_writes_the_report_through_the_same_private_writer(tmp_path: Path):
    from tests.dashboard_helpers import DashboardApp, session_at, settle

    run = write_recorded_run(tmp_path / "run", "success")
    outside, content, mode = victim(tmp_path)
    (run.path / "report.md.tmp").symlink_to(outside)
    app = DashboardApp(session_at("success", run_path=run.path), result_on_end=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await settle(pilot)
        await pilot.press("o")
        for _ in range(50):
            await pilot.pause(0.05)
            if type(app.screen).__name__ == "ReportScreen":
                break
        assert type(app.screen).__name__ == "ReportScreen"
    assert outside.read_bytes() == content and outside.stat().st_mode == mode
    report = run.path / "report.md"
    assert not report.is_symlink() and report.stat().st_mode & 0o777 == 0o600


def test_event_text_cannot_make_lines_of_its_own_in_the_report(tmp_path: Path):
    injected = "boom\n## Injected heading\n| forged | row |\r\n<img src=x onerror=alert(1)>"
    run = write_run(tmp_path / "run", [
        ev.RunStarted(ts=T, run_id="r\n# Forged title", target="lab", vm_name="vast-lb"),
        ev.StepStarted(ts=T + 1, step="create_vm", title=f"Create {injected}", group="provision"),
        ev.RetryScheduled(ts=T + 2, operation=f"GET {injected}", attempt=1, error=injected, delay_s=1.0),
        ev.GuestDisconnected(ts=T + 3, reason=injected),
        ev.GuestReconnected(ts=T + 5, attempts=2, down_s=2.0),
        ev.TuningChecked(ts=T + 6, id="thp_enabled", expected="never", observed=injected, ok=False),
        ev.StepFinished(ts=T + 7, step="create_vm", ok=False, error=injected),
        ev.RunFinished(ts=T + 8, outcome="aborted", exit_code=130, message=injected),
    ])
    result = vlb("report", str(run.path))
    assert result.returncode == 0, result.stderr
    lines = (run.path / "report.md").read_text().splitlines()
    assert not [line for line in lines if line.startswith(("## Injected", "| forged", "# Forged"))]
    assert not [line for line in lines if "<img" in line]
    assert len([line for line in lines if line.startswith("# ")]) == 1
    assert any("boom ## Injected heading" in line for line in lines)  # the text is there, on its line


def test_a_forged_row_cannot_add_columns_to_a_table(tmp_path: Path):
    run = write_run(tmp_path / "run", [
        ev.RunStarted(ts=T, run_id="r", target="lab", vm_name="vast-lb"),
        ev.TuningChecked(ts=T + 6, id="thp_enabled", expected="never", observed="a | b\n| c", ok=False),
    ])
    assert vlb("report", str(run.path)).returncode == 0
    lines = (run.path / "report.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| Tuning |"))
    row = next(line for line in lines if line.startswith("| thp_enabled |"))
    assert row.count(" | ") == header.count(" | ")
    assert "a \\| b \\| c" in row


# --- item 7: crafted files never crash, hang or flood `report`, `--resume`, `import-traces` -------


def test_a_deeply_nested_line_is_skipped_and_said(tmp_path: Path):
    run = write_recorded_run(tmp_path / "run", "success")
    bomb = "[" * 100_000 + "]" * 100_000
    with (run.path / "events.jsonl").open("a") as handle:
        handle.write(json.dumps({"type": "StepProgressed", "ts": T, "step": "x", "message": "m"})[:-1]
                     + ', "fraction": ' + bomb + "}\n")
        handle.write('{"type": "StepProgressed", "ts": 1, "step": "x", "message": ' + '{"a": ' * 40 + "1"
                     + "}" * 41 + "\n")
    with (run.path / "samples.jsonl").open("a") as handle:
        handle.write('{"type": "SampleTaken", "ts": 1, "sample": ' + bomb + "}\n")
    result = vlb("report", str(run.path))
    assert result.returncode == 0, result.stderr
    assert "internal error" not in result.stderr
    assert "nested too deeply" in result.stderr and "nested deeper than 32 levels" in result.stderr
    text = (run.path / "report.md").read_text()
    assert "samples.jsonl" in text and "nested too deeply to be read" in text


def test_a_fifo_in_place_of_a_journal_file_is_refused_not_waited_on(tmp_path: Path):
    run = write_recorded_run(tmp_path / "run", "success")
    (run.path / "samples.jsonl").unlink()
    os.mkfifo(run.path / "samples.jsonl")
    result = vlb("report", str(run.path), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "samples.jsonl is a FIFO" in result.stderr and "internal error" not in result.stderr


def test_a_huge_line_is_skipped_in_bounded_memory(tmp_path: Path):
    """1 GiB of zeros and no newline as samples.jsonl, with the address space capped at 512 MiB:
    read whole, the line alone would not fit."""
    run = write_recorded_run(tmp_path / "run", "success")
    samples = run.path / "samples.jsonl"
    data = samples.read_bytes()
    samples.unlink()
    with sparse(samples).open("ab") as handle:
        handle.write(b"\n" + data)
    result = vlb("report", str(run.path), memory=512 * 1024**2, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "samples.jsonl line 1: longer than 4,194,304 bytes" in result.stderr
    report = (run.path / "report.md").read_text()
    assert "ONLINE" in report  # the samples after the huge line were read


def test_import_traces_skips_a_huge_install_log_line_in_bounded_memory(tmp_path: Path):
    folder = write_folder(tmp_path / "traces")
    log = folder / "install" / "vast_install_test.log"
    text = log.read_bytes()
    log.unlink()
    with sparse(log).open("ab") as handle:
        handle.write(b"\n" + text)
    out = tmp_path / "out"
    result = vlb("import-traces", str(folder), "--run-dir", str(out), memory=512 * 1024**2, timeout=300)
    assert result.returncode == 0, result.stderr
    run = RunDir.open(out)
    imported = next(e for e in run.events() if isinstance(e, ev.TracesImported))
    row = next(f for f in imported.files if f["name"].endswith("vast_install_test.log"))
    assert row["skipped"] == 1 and "line 1 skipped: longer than" in row["note"]
    assert any(isinstance(e, ev.ClusterStateChanged) and e.state == "ONLINE" for e in run.events())


def test_import_traces_reads_regular_files_only_and_says_what_it_skipped(tmp_path: Path):
    folder = write_folder(tmp_path / "traces")
    secret = tmp_path / "shadow"
    secret.write_text("[2026-03-01 10:00:01] [INFO] TOPSECRET-MARKER root:$6$hash\n")
    (folder / "install" / "vast_install_secret.log").symlink_to(secret)
    (folder / "monitoring" / "loadavg.log").unlink()
    (folder / "monitoring" / "loadavg.log").symlink_to(secret)
    os.mkfifo(folder / "monitoring" / "vmstat_fifo.log")
    out = tmp_path / "out"
    result = vlb("import-traces", str(folder), "--run-dir", str(out), timeout=60)
    assert result.returncode == 0, result.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert b"TOPSECRET-MARKER" not in path.read_bytes(), path
    imported = next(e for e in RunDir.open(out).events() if isinstance(e, ev.TracesImported))
    notes = {f["name"]: f["note"] for f in imported.files}
    assert "skipped: a symbolic link" in notes["install/vast_install_secret.log"]
    assert "skipped: a symbolic link" in notes["monitoring/loadavg.log"]
    assert "skipped: a FIFO" in notes["monitoring/vmstat_fifo.log"]


def test_resume_skips_a_nested_journal_line_instead_of_crashing(tmp_path: Path):
    run_dir = tmp_path / "run"
    answers = tmp_path / "answers.yaml"
    answers.write_text(LAB_ANSWERS)
    try:
        first = vlb("--auto", str(answers), "--run-dir", str(run_dir), "--speed", "300", "--until", "size")
        assert first.returncode == 0, first.stderr
        with (run_dir / "events.jsonl").open("a") as handle:
            handle.write('{"type": "StepProgressed", "ts": 1, "step": "x", "message": ' + "[" * 50_000 + "]" * 50_000
                         + "}\n")
        resumed = vlb("--resume", str(run_dir), "--speed", "300", "--until", "ova")
        assert resumed.returncode == 0, resumed.stderr + resumed.stdout
        assert "internal error" not in resumed.stderr
        assert "line(s) of the run's journal" in resumed.stderr and "nested too deeply" in resumed.stderr
        assert "stopped after ova as asked" in resumed.stdout
    finally:
        stop_lab_guests(run_dir)


# --- item 11, file parts: a symlinked --run-dir; a damaged run.json ------------------------------


def test_a_symlinked_run_dir_is_refused_and_its_target_left_alone(tmp_path: Path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o755)
    target.chmod(0o755)
    link = tmp_path / "run"
    link.symlink_to(target)
    answers = tmp_path / "answers.yaml"
    answers.write_text(LAB_ANSWERS)
    result = vlb("--auto", str(answers), "--run-dir", str(link), "--until", "connect", "--speed", "300")
    assert result.returncode == 2, result.stderr
    assert "symbolic link" in result.stderr and "internal error" not in result.stderr
    assert target.stat().st_mode & 0o777 == 0o755 and list(target.iterdir()) == []


@pytest.mark.parametrize("damage", [b"{not json", b"[1, 2]", b"\xff\xfe garbage", b""])
def test_a_damaged_run_json_is_bad_input_for_resume(tmp_path: Path, damage: bytes):
    run = write_recorded_run(tmp_path / "run", "success")
    (run.path / "answers.yaml").write_text(LAB_ANSWERS)
    (run.path / "run.json").write_bytes(damage)
    try:
        result = vlb("--resume", str(run.path), "--speed", "300", "--until", "connect")
        assert result.returncode == 2, result.stderr + result.stdout
        assert "run.json" in result.stderr and "damaged" in result.stderr
        assert (run.path / "run.json").read_bytes() == damage  # not rewritten without its id and options
    finally:
        stop_lab_guests(run.path)


def test_a_missing_run_json_is_bad_input_for_resume(tmp_path: Path):
    run = write_recorded_run(tmp_path / "run", "success")
    (run.path / "answers.yaml").write_text(LAB_ANSWERS)
    (run.path / "run.json").unlink()
    result = vlb("--resume", str(run.path), "--speed", "300", "--until", "connect")
    assert result.returncode == 2 and "run.json" in result.stderr
    assert not (run.path / "run.json").exists()


def test_report_of_a_run_with_a_damaged_run_json_says_so(tmp_path: Path):
    run = write_recorded_run(tmp_path / "run", "success")
    (run.path / "run.json").write_text("{torn")
    result = vlb("report", str(run.path))
    assert result.returncode == 0, result.stderr
    assert "run.json" in result.stderr and "not JSON" in result.stderr


def test_a_resume_never_writes_through_symlinks_planted_in_the_run_or_the_labs_state(tmp_path: Path):
    """Every old-style temp name beside every file of the run and of the lab's world points outside:
    the resume (which rewrites run.json, the lab's clock, its Proxmox state, the guest's record, the
    known_hosts) writes none of them."""
    run_dir = tmp_path / "run"
    answers = tmp_path / "answers.yaml"
    answers.write_text(LAB_ANSWERS)
    outside, content, mode = victim(tmp_path)
    try:
        first = vlb("--auto", str(answers), "--run-dir", str(run_dir), "--speed", "300", "--until", "connect")
        assert first.returncode == 0, first.stderr
        planted = 0
        for path in [p for p in run_dir.rglob("*") if p.is_file() and not p.is_symlink()]:
            for name in {path.name + ".tmp", path.with_suffix(".tmp").name}:
                if not (path.parent / name).exists():
                    (path.parent / name).symlink_to(outside)
                    planted += 1
        assert planted >= 6
        resumed = vlb("--resume", str(run_dir), "--until", "first_boot")
        assert resumed.returncode == 0, resumed.stderr + resumed.stdout
        assert (run_dir / "lab" / "guests").is_dir()  # the guest's own files were written too
        assert outside.read_bytes() == content and outside.stat().st_mode == mode
    finally:
        stop_lab_guests(run_dir)


def test_a_fifo_as_the_runs_answers_file_is_refused_on_resume(tmp_path: Path):
    run = write_recorded_run(tmp_path / "run", "success")
    (run.path / "run.json").write_text(json.dumps({"id": "r", "status": "running", "speed": 300}))
    os.mkfifo(run.path / "answers.yaml")
    result = vlb("--resume", str(run.path), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "answers.yaml is a FIFO" in result.stderr
