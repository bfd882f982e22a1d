"""Pins enforced from the command line: a Proxmox certificate or a guest host key that does not match
the fingerprint pinned in the answers is refused with one clear message naming both fingerprints
and exit 1, never a traceback, never a crash file. (Client-level tests: tests/test_proxmox_lab.py,
tests/test_guest_lab_hostkeys.py.)"""

from __future__ import annotations

import contextlib
import io
import tempfile

import pytest

from tests.security_support import cli, require_lab_guest, stop_lab_guests
from tui import cli as cli_module

WRONG_TLS = ":".join(["AB", "CD", "EF", "01"] * 8)
WRONG_SSH = "SHA256:" + "A" * 43
VM = "vm: {name: vast-lb, vcpus: 12, memory_gib: 120, disk_gib: 1000}\n"


def run_main(args: list[str], monkeypatch, tmp_path) -> tuple[int, str, str]:
    """`tui.cli.main` in this process, with crash files going to tmp_path/tmp."""
    crash_dir = tmp_path / "tmp"
    crash_dir.mkdir(exist_ok=True)
    monkeypatch.setenv("TMPDIR", str(crash_dir))
    monkeypatch.setattr(tempfile, "tempdir", None)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_module.main(args)
    assert list(crash_dir.iterdir()) == [], "a crash file was written"
    return code, out.getvalue(), err.getvalue()


def _tls_refusal(text: str) -> None:
    assert "does not match the pinned fingerprint" in text
    assert f"expected {WRONG_TLS}, got " in text
    assert "Traceback" not in text


def test_check_refuses_a_certificate_that_does_not_match_the_pin(tmp_path, monkeypatch):
    answers = tmp_path / "answers.yaml"
    answers.write_text(f'proxmox: {{url: lab, fingerprint: "{WRONG_TLS}"}}\n' + VM)
    code, out, err = run_main(["check", str(answers)], monkeypatch, tmp_path)
    assert code == 1 and out == ""
    assert err.startswith("vast-loopback: the TLS certificate of 127.0.0.1:")
    _tls_refusal(err)


def test_a_run_refuses_a_certificate_that_does_not_match_the_pin_before_any_change(tmp_path, monkeypatch):
    answers = tmp_path / "answers.yaml"
    answers.write_text(f'proxmox: {{url: lab, fingerprint: "{WRONG_TLS.lower()}"}}\n' + VM)
    run = tmp_path / "run"
    code, out, err = run_main(["--auto", str(answers), "--run-dir", str(run), "--speed", "120"], monkeypatch,
                              tmp_path)
    assert code == 1
    _tls_refusal(out)
    assert "run failed (exit 1)" in out
    requests = run / "lab" / "pve-requests.jsonl"
    assert not requests.exists() or requests.read_text() == ""  # refused before a single API request


@pytest.mark.slow
@pytest.mark.lab
def test_a_run_refuses_a_guest_host_key_that_does_not_match_the_pin(tmp_path):
    require_lab_guest()
    answers = tmp_path / "answers.yaml"
    answers.write_text(VM + f"guest: {{host_key: '{WRONG_SSH}'}}\n")
    run = tmp_path / "run"
    try:
        result = cli("--auto", str(answers), "--run-dir", str(run), "--speed", "120",
                     env={"TMPDIR": str(tmp_path)}, timeout=120)
        assert result.returncode == 1, result.stdout[-1500:] + result.stderr[-1500:]
        refusal = [line for line in result.stdout.splitlines() if "FAILED: guest_connect:" in line]
        assert len(refusal) == 1
        assert "presented host key SHA256:" in refusal[0]
        assert f"but {WRONG_SSH} was expected; refusing to connect" in refusal[0]
        assert "Traceback" not in result.stdout + result.stderr
        assert not list(tmp_path.glob("vast-loopback-crash-*"))
        assert "SSH to centos@" not in result.stdout  # never connected
    finally:
        stop_lab_guests(run)
