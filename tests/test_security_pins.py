"""Pins enforced from the command line: a Proxmox certificate, a guest host key or a VMS certificate
that does not match the fingerprint pinned in the answers is refused with one clear message naming
both fingerprints and exit 1, never a traceback, never a crash file; the VMS's certificate is pinned
from the guest over SSH when the answers pin none, and a VMS nothing vouches for gets no password. (Client-level tests: tests/test_proxmox_lab.py,
tests/test_guest_lab_hostkeys.py.)"""

from __future__ import annotations

import contextlib
import io
import json
import ssl
import tempfile

import pytest
import yaml

from backend.lab.facts import VMS_CERT_PATH
from backend.lab.pve.tls import ensure_certificate
from backend.target import certificate_fingerprint
from tests.security_support import cli, require_lab_guest, stop_lab_guests
from tui import cli as cli_module

WRONG_TLS = ":".join(["AB", "CD", "EF", "01"] * 8)
WRONG_SSH = "SHA256:" + "A" * 43
SIZES = "vm: {name: vast-lb, vcpus: 12, memory_gib: 120, disk_gib: 1000}\n"
VM = "proxmox: {url: lab}\n" + SIZES


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
    answers.write_text(f'proxmox: {{url: lab, fingerprint: "{WRONG_TLS}"}}\n' + SIZES)
    code, out, err = run_main(["check", str(answers)], monkeypatch, tmp_path)
    assert code == 1 and out == ""
    assert err.startswith("vast-loopback: the TLS certificate of 127.0.0.1:")
    _tls_refusal(err)


def test_a_run_refuses_a_certificate_that_does_not_match_the_pin_before_any_change(tmp_path, monkeypatch):
    answers = tmp_path / "answers.yaml"
    answers.write_text(f'proxmox: {{url: lab, fingerprint: "{WRONG_TLS.lower()}"}}\n' + SIZES)
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


# --- the VMS's certificate (issue 12, item 3) -----------------------------------------------------

ELSEWHERE = "/etc/vms/tls/server.pem"  # a guest that keeps its VMS certificate where the run does not look


def _events(run) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def _vms_requests(run) -> list[dict]:
    log = run / "lab" / "vms-requests.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _guest_file(run, guest_path: str):
    return run / "lab" / "guests" / "100" / "disk" / guest_path.lstrip("/")


def _run(tmp_path, answers_text: str, *args: str, name: str = "run"):
    answers = tmp_path / f"{name}.yaml"
    answers.write_text(answers_text)
    run = tmp_path / name
    # 120x, as the other lab runs here: the engine's own wall-bound work counts speed-fold in lab
    # time (the lab's, a guest's reboot, costs none)
    result = cli("--auto", str(answers), "--run-dir", str(run), "--speed", "120", *args,
                 env={"TMPDIR": str(tmp_path)}, timeout=240)
    assert "Traceback" not in result.stdout + result.stderr
    return result, run


@pytest.mark.slow
@pytest.mark.lab
def test_a_run_pins_the_certificate_the_guests_vms_keeps_read_over_ssh(tmp_path):
    require_lab_guest()
    result, run = _run(tmp_path, VM)
    try:
        assert result.returncode == 0, result.stdout[-1500:]
        trusted = [e for e in _events(run) if e["type"] == "VmsCertificateTrusted"]
        der = ssl.PEM_cert_to_DER_cert(_guest_file(run, VMS_CERT_PATH).read_text())
        # trusted at the bootstrap, and again by the reboot test's new client: the same certificate
        assert trusted and {e["fingerprint"] for e in trusted} == {certificate_fingerprint(der)}
        assert all(f"{VMS_CERT_PATH} read over SSH, host key SHA256:" in e["source"] for e in trusted)
        requests = _vms_requests(run)
        first_trusted = trusted[0]["ts"]
        assert requests and all(r["t"] >= first_trusted for r in requests)  # nothing before the pin
    finally:
        stop_lab_guests(run)


@pytest.mark.slow
@pytest.mark.lab
def test_a_run_refuses_a_vms_certificate_nothing_vouches_for_and_sends_no_password(tmp_path):
    """The bad case of the test above: the guest keeps its certificate elsewhere, nothing is pinned."""
    require_lab_guest()
    result, run = _run(tmp_path, VM + f"lab: {{vms_cert_path: {ELSEWHERE}}}\n")
    try:
        assert result.returncode == 1, result.stdout[-1500:]
        der = ssl.PEM_cert_to_DER_cert(_guest_file(run, ELSEWHERE).read_text())
        shown = certificate_fingerprint(der)
        refusal = [line for line in result.stdout.splitlines() if "FAILED: bootstrap:" in line]
        assert len(refusal) == 1
        assert f"presents certificate {shown}, which nothing vouches for" in refusal[0]
        assert f"{VMS_CERT_PATH}: head: cannot open" in refusal[0] and "refusing to send the VMS password" in refusal[0]
        assert f"vast.fingerprint: {shown}" in result.stdout  # the hint: check it on the guest, pin it
        assert not [e for e in _events(run) if e["type"] == "VmsCertificateTrusted"]
        assert _vms_requests(run) == []  # not one request, not one credential
    finally:
        stop_lab_guests(run)


@pytest.mark.slow
@pytest.mark.lab
def test_a_run_refuses_a_vms_certificate_that_does_not_match_the_pin(tmp_path):
    require_lab_guest()
    result, run = _run(tmp_path, VM + f'vast: {{fingerprint: "{WRONG_TLS}"}}\n')
    try:
        assert result.returncode == 1, result.stdout[-1500:]
        der = ssl.PEM_cert_to_DER_cert(_guest_file(run, VMS_CERT_PATH).read_text())
        assert (f"the VMS certificate on the guest ({VMS_CERT_PATH}) is {certificate_fingerprint(der)}, but "
                f"vast.fingerprint pins {WRONG_TLS}; refusing to send the VMS password") in result.stdout
        assert _vms_requests(run) == []
    finally:
        stop_lab_guests(run)


@pytest.mark.slow
@pytest.mark.lab
def test_a_pin_in_the_answers_trusts_a_vms_whose_certificate_is_kept_elsewhere(tmp_path):
    """Prepared, then the VMS's certificate (known beforehand, as a user who made it would) placed on
    the guest where the run does not look, pinned in the answers, and the run resumed to ONLINE."""
    require_lab_guest()
    result, run = _run(tmp_path, VM + f"lab: {{vms_cert_path: {ELSEWHERE}}}\n", "--until", "pre-install")
    try:
        assert result.returncode == 0, result.stdout[-1500:]
        cert, key = _guest_file(run, ELSEWHERE), _guest_file(run, ELSEWHERE.replace(".pem", ".key"))
        cert.parent.mkdir(parents=True, exist_ok=True)
        made, made_key, _ = ensure_certificate(tmp_path / "made", "vms.example")
        cert.write_bytes(made.read_bytes())
        key.write_bytes(made_key.read_bytes())
        pin = certificate_fingerprint(ssl.PEM_cert_to_DER_cert(made.read_text()))
        answers = yaml.safe_load((run / "answers.yaml").read_text())
        answers["vast"]["fingerprint"] = pin
        (run / "answers.yaml").write_text(yaml.safe_dump(answers))
        resumed = cli("--resume", str(run), env={"TMPDIR": str(tmp_path)}, timeout=240)
        assert resumed.returncode == 0, resumed.stdout[-1500:]
        trusted = [e for e in _events(run) if e["type"] == "VmsCertificateTrusted"]
        assert trusted and {(e["fingerprint"], e["source"]) for e in trusted} == {(pin, "vast.fingerprint in the answers")}
    finally:
        stop_lab_guests(run)
