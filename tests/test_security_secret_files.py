"""Secrets are checked when the answers are loaded, and a refused one is never shown.

A secret with a line break or another control character (from `env:` or a two-line `file:`, such as
`file:/etc/shadow`, directly or through a symlink) is bad input, exit 2, with a message that names
the field and the reference but holds no part of the value, before a run directory exists. A
`file:` secret must be a regular file; one reached through a symlink, not owned by the user or open
to group or others is said (a warning), or refused with `--strict`. A relative `file:` path is made
absolute at load, so `--resume` from another directory reads the same file. A Proxmox token
secret that cannot pass the PVEAPIToken header intact is refused at load.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.errors import BadInput
from backend.model import answers as answers_mod
from backend.secrets import SecretRef
from tests.security_support import REPO, find_secrets

ANSWERS = """\
proxmox: {{url: lab, token_id: "root@pam!vlb", token_secret: "{token}"}}
vm: {{name: vast-lb, vcpus: 12, memory_gib: 120, disk_gib: 1000}}
"""
NEWLINE_TOKEN = "TOKNL-z9y8\nX"


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def answers_file(tmp_path: Path, token: str) -> Path:
    path = tmp_path / "answers.yaml"
    path.write_text(ANSWERS.format(token=token))
    return path


def secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def _clean(result: subprocess.CompletedProcess, *parts: str) -> None:
    for text in (result.stdout, result.stderr):
        for part in parts:
            assert part not in text, (part, text)
        assert "Traceback" not in text


@pytest.mark.parametrize("command", ["check", "--auto"])
def test_a_token_with_a_newline_from_env_is_refused_and_never_shown(tmp_path, command):
    answers = answers_file(tmp_path, "env:VLB_NL_TOKEN")
    run = tmp_path / "run"
    args = ["check", str(answers)] if command == "check" else ["--auto", str(answers), "--run-dir", str(run)]
    result = run_cli(*args, env={"VLB_NL_TOKEN": NEWLINE_TOKEN})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("vast-loopback: proxmox.token_secret: the secret in environment variable "
                                    "VLB_NL_TOKEN spans more than one line")
    _clean(result, "TOKNL", "z9y8", "\\nX")
    assert not run.exists()  # refused before a run directory (and its events.jsonl) exists


def test_a_two_line_secret_file_is_refused_and_never_shown(tmp_path):
    token = secret_file(tmp_path / "token", NEWLINE_TOKEN + "\n")
    result = run_cli("check", str(answers_file(tmp_path, f"file:{token}")))
    assert result.returncode == 2
    assert f"the secret in secret file {token} spans more than one line" in result.stderr
    _clean(result, "TOKNL", "z9y8")


def test_a_system_file_as_a_secret_through_a_symlink_is_refused_without_dumping_it(tmp_path):
    """The finding: `token_secret: file:/etc/shadow`, directly or through a symlink, dumped it.
    A stand-in with the same shape (many lines, 0640), and /etc/shadow itself where it exists."""
    shadow = secret_file(tmp_path / "shadow", "root:*:20228:0:99999:7:::\ndaemon:*:20228:0:99999:7:::\n", 0o640)
    link = tmp_path / "innocent-token"
    link.symlink_to(shadow)
    for reference in (f"file:{shadow}", f"file:{link}"):
        result = run_cli("check", str(answers_file(tmp_path, reference)))
        assert result.returncode == 2
        _clean(result, "root:", "daemon", "20228")
    assert f"secret file {link} is reached through a symlink: it is {shadow}" in result.stderr
    assert "open to its group or others (mode 0640" in result.stderr
    real = Path("/etc/shadow")
    if real.exists():
        result = run_cli("check", str(answers_file(tmp_path, "file:/etc/shadow")))
        assert result.returncode == 2
        if os.access(real, os.R_OK):
            lines = [line for line in real.read_text().splitlines() if len(line) >= 6]
            _clean(result, *lines)
            assert find_secrets((result.stdout + result.stderr).encode(), dict(enumerate(lines))) == []
        else:
            assert "/etc/shadow is not readable" in result.stderr


def test_a_control_character_or_a_short_secret_is_refused(tmp_path, monkeypatch):
    for value, why in (("abc\x1b[2Jdef", "holds a control character"), ("tok\tsecret", "holds a control character"),
                       ("ab\u2028cd-ef", "spans more than one line"), ("abc", "shorter than 4 characters")):
        monkeypatch.setenv("VLB_ODD", value)
        with pytest.raises(BadInput) as info:
            SecretRef.parse("env:VLB_ODD").resolve("guest.password")
        assert why in str(info.value) and value not in str(info.value)


def test_an_ssh_key_file_keeps_its_lines(tmp_path):
    key = secret_file(tmp_path / "id", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
                                       "-----END OPENSSH PRIVATE KEY-----\n")
    answers = answers_mod.parse(f"proxmox: {{url: lab}}\nguest: {{key: 'file:{key}'}}\n")
    assert answers_mod.check_secrets(answers) == []
    assert answers.guest.key.resolve("guest.key", lines=True).reveal().count("\n") == 2


def test_a_loose_secret_file_is_warned_about_and_refused_with_strict(tmp_path):
    token = secret_file(tmp_path / "token", "lab-loose-token-0123\n", 0o644)
    answers = answers_file(tmp_path, f"file:{token}")
    result = run_cli("check", str(answers))
    assert result.returncode == 0, result.stderr
    assert (f"vast-loopback: warning: proxmox.token_secret: secret file {token} is open to its group or others "
            "(mode 0644; chmod 600 it)") in result.stderr
    strict = run_cli("check", "--strict", str(answers))
    assert strict.returncode == 2 and strict.stdout == ""
    assert strict.stderr.startswith(f"vast-loopback: proxmox.token_secret: secret file {token} is open")
    run = tmp_path / "run"
    refused = run_cli("--auto", str(answers), "--strict", "--run-dir", str(run))
    assert refused.returncode == 2 and not run.exists()
    _clean(result, "lab-loose-token")


def test_a_symlinked_secret_file_is_reported_with_its_target(tmp_path):
    token = secret_file(tmp_path / "real-token", "lab-linked-token-0123\n")
    link = tmp_path / "token"
    link.symlink_to(token)
    answers = answers_mod.parse(ANSWERS.format(token=f"file:{link}"))
    assert answers_mod.check_secrets(answers) == [
        f"proxmox.token_secret: secret file {link} is reached through a symlink: it is {token}"]
    with pytest.raises(BadInput, match="reached through a symlink"):
        answers_mod.check_secrets(answers, strict=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_secret_file_of_another_user_is_warned_about(tmp_path):
    token = secret_file(tmp_path / "token", "lab-other-token-0123\n")
    os.chown(token, 65534, 65534)
    answers = answers_mod.parse(ANSWERS.format(token=f"file:{token}"))
    assert answers_mod.check_secrets(answers) == [
        f"proxmox.token_secret: secret file {token} belongs to uid 65534, not to you (uid 0)"]
    with pytest.raises(BadInput, match="belongs to uid 65534"):
        answers_mod.check_secrets(answers, strict=True)


def test_a_token_secret_proxmox_cannot_carry_is_refused_at_load(tmp_path, monkeypatch):
    for value in ("tok=abcd", "tok;abcd", "tok%41bcd", "tok abcd", "tök-abcd"):
        monkeypatch.setenv("VLB_TOKEN_ODD", value)
        answers = answers_mod.parse(ANSWERS.format(token="env:VLB_TOKEN_ODD"))
        with pytest.raises(BadInput, match="cannot be a Proxmox API token secret") as info:
            answers_mod.check_secrets(answers)
        assert value not in str(info.value)
    monkeypatch.setenv("VLB_TOKEN_ODD", "tok,with,commas+/_-~!")
    assert answers_mod.check_secrets(answers_mod.parse(ANSWERS.format(token="env:VLB_TOKEN_ODD"))) == []


def test_a_relative_secret_file_is_stored_absolute_and_resume_works_from_elsewhere(tmp_path):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    secret_file(here / "token", "lab-relative-token-0123\n")
    (here / "answers.yaml").write_text(ANSWERS.format(token="file:token"))
    run = tmp_path / "run"
    first = run_cli("--auto", "answers.yaml", "--run-dir", str(run), "--until", "connect", "--speed", "600", cwd=here)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"token_secret: file:{here / 'token'}" in (run / "answers.yaml").read_text()
    resumed = run_cli("--resume", str(run), "--until", "size", "--speed", "600", cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "stopped after size as asked" in resumed.stdout


def test_a_token_with_commas_authenticates_against_the_lab(tmp_path):
    """The finding said a token with a comma failed the lab's authentication; Proxmox splits the
    token at its last '=' only, and so does the lab (tests/test_lab_pve_auth.py)."""
    answers = answers_file(tmp_path, "env:VLB_COMMA_TOKEN")
    result = run_cli("check", str(answers), env={"VLB_COMMA_TOKEN": "tok,with,commas-0123"})
    assert result.returncode == 0, result.stderr
    _clean(result, "tok,with,commas")
