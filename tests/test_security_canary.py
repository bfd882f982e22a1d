"""Secrets kept: a whole install on the lab with known, distinctive secrets given by reference, then
every file of the run directory (the lab's world included), every output of the process and of
`report --json`, and any crash file are searched for them, plain or disguised (JSON, shell quoting,
URL encoding, hex, base64). The run directory and its files are private.

The secrets are the ones the lab then requires: the Proxmox token (real token auth), the guest's SSH
password (the lab guest accepts only it) and the VMS admin password (vcli and the REST API check
it). They carry quotes, `;`, `$` and spaces, so every shell command they pass through is tested too.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.security_support import (
    ProcessWatch,
    cli,
    find_secrets,
    require_lab_guest,
    scan_tree,
    stop_lab_guests,
)

pytestmark = [pytest.mark.slow, pytest.mark.lab]

SECRETS = {
    "proxmox.token_secret": "tok-Zq8+Kx3/tokcanary_4f1e",  # no "=": Proxmox splits the token at the last one
    "guest.password": "gst Wm7'Pn2;gstcanary$9b3d",
    "vast.admin_password": "vms'Rt5\"Yh6;vmscanary $x&7",
}
ENV = {"VLB_CANARY_TOKEN": SECRETS["proxmox.token_secret"], "VLB_CANARY_GUEST": SECRETS["guest.password"],
       "VLB_CANARY_VMS": SECRETS["vast.admin_password"]}
ANSWERS = """\
proxmox: {url: lab, token_id: "root@pam!canary", token_secret: "env:VLB_CANARY_TOKEN"}
vm: {name: vast-lb, vcpus: 12, memory_gib: 120, disk_gib: 1000}
guest: {password: "env:VLB_CANARY_GUEST"}
vast: {admin_password: "env:VLB_CANARY_VMS"}
"""


class Canary:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.run_dir = root / "run"
        self.crash_dir = root / "tmp"  # TMPDIR of the process: where a crash file would go
        self.crash_dir.mkdir()
        self.answers = root / "answers.yaml"
        self.answers.write_text(ANSWERS)
        env = {**ENV, "TMPDIR": str(self.crash_dir)}
        with ProcessWatch() as self.processes:  # what any user of the guest could read meanwhile
            self.install = cli("--auto", str(self.answers), "--run-dir", str(self.run_dir), "--speed", "120", env=env)
        self.report = cli("report", str(self.run_dir), "--json", env=env, timeout=60)


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    require_lab_guest()
    run = Canary(tmp_path_factory.mktemp("canary"))
    try:
        yield run
    finally:
        stop_lab_guests(run.run_dir)


def test_the_install_with_secrets_by_reference_reaches_online(canary):
    assert canary.install.returncode == 0, canary.install.stdout[-2000:] + canary.install.stderr[-2000:]
    assert "run online (exit 0)" in canary.install.stdout
    assert canary.report.returncode == 0, canary.report.stderr
    # The secrets were really used: the lab's Proxmox saw the answers' token, the guest took the password.
    requests = (canary.run_dir / "lab" / "pve-requests.jsonl").read_text()
    assert "root@pam!canary" in requests
    assert "SSH to centos@" in canary.install.stdout


def test_no_secret_in_any_file_of_the_run_directory(canary):
    files = [p for p in canary.run_dir.rglob("*") if p.is_file()]
    assert any(p.match("lab/guests/*/disk/home/centos/.vast-loopback/jobs/cluster_create/log") for p in files)
    assert scan_tree(canary.run_dir, SECRETS) == {}


def test_no_secret_in_the_outputs_or_a_crash_file(canary):
    outputs = {
        "install stdout": canary.install.stdout, "install stderr": canary.install.stderr,
        "report --json stdout": canary.report.stdout, "report --json stderr": canary.report.stderr,
    }
    assert {name: hits for name, text in outputs.items() if (hits := find_secrets(text.encode(), SECRETS))} == {}
    assert list(canary.crash_dir.iterdir()) == []


def test_the_saved_answers_hold_only_references(canary):
    saved = (canary.run_dir / "answers.yaml").read_text()
    for name in ("VLB_CANARY_TOKEN", "VLB_CANARY_GUEST", "VLB_CANARY_VMS"):
        assert f"env:{name}" in saved


def test_the_vms_password_reached_vcli_but_not_its_echoed_command_line(canary):
    log = (canary.run_dir / "install.log").read_text()
    echoed = [line for line in log.splitlines() if "./vman.sh" in line and " vcli " in line]
    assert echoed and all("vcli -u admin -c cluster create" in line and " -p " not in line for line in echoed)
    password_file = next(canary.run_dir.glob("lab/guests/*/disk/home/centos/.vast-loopback/jobs/cluster_create"))
    assert not (password_file / "vms-password").exists()  # read and deleted by the job


def test_no_process_of_the_guest_shows_a_secret_in_its_command_line_during_cluster_create(canary):
    """The finding: `vcli -u admin -p <password>` sat in /proc/*/cmdline, readable by every guest
    user, for the whole cluster-create step. The watch read every command line while the install ran
    and did see the cluster create's (vman.sh and its vcli), with no secret in any of them."""
    processes = canary.processes
    assert processes.holding(b"player.py vman", b"vcli -u admin", b"cluster create")  # it was watched
    assert {line.decode(errors="replace"): hits for line in processes.seen
            if (hits := find_secrets(line, SECRETS))} == {}
    assert processes.holding(b"vman.sh", b"vcli -u admin -c cluster create")


def test_the_process_watch_sees_a_password_on_a_guest_command_line(tmp_path):
    """The bad case the watch is there for: a process in the lab guest with a password in its argv
    (as the field's vcli had) is seen, so the watch above would have caught it."""
    from backend.clock import Clock
    from backend.lab.guest.lab import GuestLab
    from tests.lab_fixtures import hardware

    require_lab_guest()
    lab = GuestLab(tmp_path / "lab", Clock.scaled(600)).start()
    try:
        lab.power_on(hardware(100))
        assert lab.wait_state(100, "up") == "up"
        with ProcessWatch() as processes:
            lab.exec(100, "sh -c 'sleep 0.5; :' vman.sh vcli -u admin -p negative-canary-7788", user="centos")
        assert processes.holding(b"vcli -u admin -p negative-canary-7788")
        assert "vms as raw" in find_secrets(b"\n".join(processes.seen), {"vms": "negative-canary-7788"})
    finally:
        lab.power_off(100, graceful=False)
        lab.close()


def test_the_lab_guest_does_not_inherit_our_environment(tmp_path, monkeypatch):
    """A guest never sees the jump host's environment, where env:NAME secrets live. (A finished run
    ends its guests, so this one boots a guest of its own and looks while it runs.)"""
    from backend.clock import Clock
    from backend.lab.guest.lab import GuestLab
    from tests.lab_fixtures import hardware

    require_lab_guest()
    secret = SECRETS["guest.password"]
    monkeypatch.setenv("VLB_CANARY_GUEST", secret)
    lab = GuestLab(tmp_path / "lab", Clock.scaled(600)).start()
    try:
        lab.power_on(hardware(100))
        assert lab.wait_state(100, "up") == "up"
        holder = json.loads((tmp_path / "lab" / "guests" / "100" / "guest.json").read_text())["holder"]
        pid = int(holder["pid"])
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        for process in (pid, parent):  # the guest's pid 1 and the unshare holding its namespaces
            environ = Path(f"/proc/{process}/environ").read_bytes()
            assert find_secrets(environ, {"guest.password": secret}) == []
            assert b"VLB_CANARY" not in environ
    finally:
        lab.power_off(100, graceful=False)
        lab.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_run_directory_and_the_lab_are_private(canary):
    run = canary.run_dir
    assert _mode(run) == 0o700
    assert _mode(run / "lab") == 0o700
    for name in ("answers.yaml", "run.json", "events.jsonl", "samples.jsonl", "install.log", "report.md"):
        assert _mode(run / name) == 0o600, name
    assert _mode(run / "lab" / "pve" / "secrets.json") == 0o600  # the lab's own generated secrets
