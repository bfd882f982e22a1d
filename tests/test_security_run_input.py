"""Bad input that used to exit 1 with an internal error (issue 12, item 8): a Proxmox URL with a port
out of range or a broken IPv6 host, a --run-dir that cannot be a run directory (under /proc, an
existing file, a dangling symlink, a read-only file system), a report --output that cannot be
written, an IPv6 guest address. Each is exit 2 with the reason. The VMS client puts an IPv6 host
in brackets."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import certifi
import pytest

from backend.secrets import Secret
from backend.vms import VmsClient
from backend.vmstrust import VmsTrust
from tests.recorded_runs import write_recorded_run
from tests.security_support import REPO
from tui.cli import main

LAB_ANSWERS = "proxmox: {url: lab}\nvm: {name: vast-lb, vcpus: 12, memory_gib: 120, disk_gib: 1000}\n"


def answers(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "answers.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("url", "said"), [
    ("https://pve:99999", "port 99999 is out of range"),
    ("https://pve:0", "port 0 is out of range"),
    ("https://[[[:::", "must be 'lab' or https://HOST[:PORT]"),
    ("https://[not:an:ip]:8006", "is not an IPv6 address"),
])
def test_a_proxmox_url_that_cannot_be_reached_is_bad_input(tmp_path, capsys, monkeypatch, url, said):
    monkeypatch.setenv("VLB_TEST_TOKEN", "secret-token")
    path = answers(tmp_path, f"proxmox: {{url: '{url}', token_id: 'root@pam!vlb', token_secret: 'env:VLB_TEST_TOKEN'}}\n")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "proxmox.url" in err and said in err and "internal error" not in err


def test_an_ipv6_guest_address_is_refused_at_load(tmp_path, capsys):
    path = answers(tmp_path, LAB_ANSWERS + "guest: {address: 'fe80::1'}\n")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "guest.address" in err and "IPv4" in err and "internal error" not in err


@pytest.mark.parametrize("where", ["proc", "file", "dangling"])
def test_a_run_dir_that_cannot_be_made_is_bad_input(tmp_path, capsys, where):
    run_dir = {"proc": Path("/proc/vast-loopback-test/run"), "file": tmp_path / "a-file",
               "dangling": tmp_path / "dangling"}[where]
    if where == "file":
        run_dir.write_text("not a directory\n")
    if where == "dangling":
        run_dir.symlink_to(tmp_path / "nowhere")
    code = main(["--auto", str(answers(tmp_path, LAB_ANSWERS)), "--run-dir", str(run_dir), "--until", "connect"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert str(run_dir) in err and "internal error" not in err
    assert not (tmp_path / "nowhere").exists()


def _namespaces() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt 2>/dev/null || "
                            "mount -t tmpfs -o size=1m tmpfs /tmp"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _namespaces(), reason="needs unshare -rm (user and mount namespaces) to mount a read-only fs")
def test_a_run_dir_on_a_read_only_file_system_is_bad_input(tmp_path):
    mount = tmp_path / "ro"
    mount.mkdir()
    script = ('mount -t tmpfs -o ro,size=1m tmpfs "$1" && exec "$2" -W ignore -m tui.cli --auto "$3" '
              '--run-dir "$1/run" --until connect')
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(mount), sys.executable,
                             str(answers(tmp_path, LAB_ANSWERS))], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Read-only file system" in result.stderr and "internal error" not in result.stderr


def test_a_report_output_that_cannot_be_written_is_bad_input(tmp_path, capsys):
    run = write_recorded_run(tmp_path / "run", "success")
    assert main(["report", str(run.path), "--output", "/proc/self/report.md"]) == 2
    err = capsys.readouterr().err
    assert "cannot write the report to /proc/self/report.md" in err and "internal error" not in err


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="needs the IPv6 loopback (::1)")
async def test_the_vms_client_reaches_an_ipv6_host_in_brackets():
    """A listener on [::1]: the client's request reaches it (it then fails the TLS handshake, a
    transient failure); unbracketed, the URL did not parse and nothing was ever sent."""
    server = socket.socket(socket.AF_INET6)
    server.bind(("::1", 0))
    server.listen()
    server.settimeout(20)
    accepted = threading.Event()

    def accept() -> None:
        try:
            connection, _ = server.accept()
        except OSError:
            return
        accepted.set()
        connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    any_ca = VmsTrust(source="a CA bundle (the handshake never gets that far)", ca_file=certifi.where())
    client = VmsClient(("::1", server.getsockname()[1]), "admin", Secret("not-the-password"), trust=any_ca)
    try:
        assert client.label == f"VMS at [::1]:{server.getsockname()[1]}"
        assert await client.reachable() is False
        thread.join(20)
        assert accepted.is_set()
    finally:
        server.close()
