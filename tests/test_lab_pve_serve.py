"""`vast-loopback lab` serves the lab in the foreground; the 'lab' provider opens it for a run."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
import requests

import backend.lab  # noqa: F401  - registers the 'lab' provider, as the entry points do
from backend.model.answers import parse
from backend.target import TargetOptions, fetch_certificate_fingerprint, open_target
from tests.conftest import REPO, ctrl_c_reaches_it

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def test_lab_command_prints_its_endpoints_serves_and_stops_on_ctrl_c(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "lab", "--host-profile", "small", "--speed", "60",
         "--state-dir", str(tmp_path / "lab")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_reaches_it)
    try:
        lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line or not line:
                break
        text = "".join(lines)
        url = re.search(r"Proxmox API\s+(\S+)", text).group(1)
        token = re.search(r"API token\s+(\S+)", text).group(1)
        secret = re.search(r"token secret\s+(\S+)", text).group(1)
        fingerprint = re.search(r"TLS SHA-256\s+(\S+)", text).group(1)
        assert "curl -k -H 'Authorization: PVEAPIToken=" in text
        answer = requests.get(url + "/nodes", headers={"Authorization": f"PVEAPIToken={token}={secret}"},
                              verify=False, timeout=5)
        assert answer.json()["data"][0]["node"] == "pve-small"
        assert fetch_certificate_fingerprint(url.removesuffix("/api2/json")) == fingerprint
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert "lab stopped" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()


async def test_lab_provider_uses_the_answers_token_and_pins_the_certificate(tmp_path, monkeypatch):
    monkeypatch.setenv("VLB_TEST_PVE_TOKEN", "answers-token-secret-42")
    answers = parse("proxmox: {url: lab, token_id: 'root@pam!vlb', token_secret: 'env:VLB_TEST_PVE_TOKEN'}\n"
                    "lab: {host_profile: big}\n")
    target = await open_target(answers, TargetOptions(speed=120, state_dir=tmp_path / "lab"))
    try:
        assert target.label == "lab big x120"
        assert target.token_secret.reveal() == "answers-token-secret-42"
        assert target.fingerprint == fetch_certificate_fingerprint(target.proxmox_url)
        assert target.clock.scale == 120
        answer = requests.get(target.proxmox_url + "/api2/json/nodes", verify=False, timeout=5,
                              headers={"Authorization": "PVEAPIToken=root@pam!vlb=answers-token-secret-42"})
        assert len(answer.json()["data"]) == 3
        assert "answers-token-secret-42" not in "".join(
            p.read_text(errors="replace") for p in (tmp_path / "lab").rglob("*") if p.is_file())
    finally:
        await target.close()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(target.proxmox_url + "/api2/json/version", verify=False, timeout=2)
