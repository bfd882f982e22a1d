"""A newcomer's first commands, run as a user runs them (a child process, the user's own warning
settings): `schema`, `check` and `--auto` on the built-in lab print no library warning on stderr,
and the first line of `check` and `--auto` names the target they point at."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.model.answers import Answers
from backend.target import TargetOptions, open_target
from tests.security_support import REPO, require_lab_guest

LAB = "built-in lab (seed host: the field report's Threadripper)"


def quiet_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`vast-loopback ARGS` as a fresh shell runs it: Python's default warning filters (no
    PYTHONWARNINGS from the test runner), nothing of pytest's filterwarnings."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    return subprocess.run([sys.executable, "-c", "import sys; from tui.cli import main; sys.exit(main())", *args],
                          cwd=cwd, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=240)


def test_schema_prints_no_library_warning(tmp_path):
    done = quiet_cli("schema", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stderr == ""
    assert done.stdout.lstrip().startswith("{")


def test_check_on_the_lab_is_quiet_and_names_the_lab_first(tmp_path):
    require_lab_guest()
    answers = tmp_path / "answers.yaml"
    answers.write_text("proxmox: {url: lab}\n")
    done = quiet_cli("check", str(answers), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines()[0] == f"target: {LAB}"


def test_auto_on_the_lab_is_quiet_and_names_the_lab_first(tmp_path):
    """A blocked run (24 vCPUs on the 12-core seed host) goes through the same start as any run: the
    engine, asyncssh and the lab loaded, the target opened and sized, in a second or two."""
    require_lab_guest()
    answers = tmp_path / "answers.yaml"
    answers.write_text("proxmox: {url: lab}\nvm: {vcpus: 24}\n")
    done = quiet_cli("--auto", str(answers), "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stderr == ""
    first = done.stdout.splitlines()[0]
    assert first.endswith(f"started on {LAB} for VM vast-loopback"), first


def test_the_filter_is_narrow():
    """Only asyncssh's DSA deprecation is silenced: the same warning raised from anywhere else
    still shows."""
    code = ("import warnings, backend\n"
            "from cryptography.utils import CryptographyDeprecationWarning\n"
            "warnings.warn('DSA is deprecated and support will be removed', CryptographyDeprecationWarning)\n")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)
    assert "CryptographyDeprecationWarning: DSA is deprecated" in done.stderr


@pytest.mark.parametrize("node, shown", [("auto", "node auto (the best one)"), ("pve2", "node pve2")])
async def test_a_real_hosts_description_is_its_url_and_node(node, shown, monkeypatch):
    monkeypatch.setenv("VLB_T_SECRET", "0123456789abcdef-secret")
    answers = Answers.model_validate({"proxmox": {"url": "https://pve.example:8006", "token_id": "root@pam!vlb",
                                                  "token_secret": "env:VLB_T_SECRET", "node": node}})
    target = await open_target(answers, TargetOptions())
    assert target.describe() == f"https://pve.example:8006, {shown}"
