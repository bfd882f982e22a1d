"""Required means required: an answers file without `proxmox.url` (an empty one too) is bad input for
every command that reads answers (they share one loader), exit 2 naming every required field it lacks
by its dotted name, with the hint where a complete file comes from; run as a user runs them (a child
process), never a traceback."""

from __future__ import annotations

import pytest

from tests.test_cli_first_hour import quiet_cli

HINT = "hint: run the wizard (vast-loopback), whose Review saves a complete answers file (^s), or read " \
       "`vast-loopback schema`"

COMMANDS = {
    "check": ("check", "{answers}"),
    "--auto": ("--auto", "{answers}", "--run-dir", "{tmp}/run"),
    "probe": ("probe", "{answers}", "--record", "{tmp}/host.json"),
    "fleet plan": ("fleet", "plan", "{answers}", "--count", "2"),
    "fleet up": ("fleet", "up", "{answers}", "--count", "2", "--run-dir", "{tmp}/fleet"),
}


def _refused(tmp_path, text: str, command: str) -> str:
    answers = tmp_path / "answers.yaml"
    answers.write_text(text)
    args = [arg.format(answers=answers, tmp=tmp_path) for arg in COMMANDS[command]]
    done = quiet_cli(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "run").exists() and not (tmp_path / "fleet").exists()  # refused before anything
    return done.stderr


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_empty_answers_file_names_proxmox_url_and_the_way_to_a_complete_one(tmp_path, command):
    stderr = _refused(tmp_path, "", command)
    assert f"vast-loopback: {tmp_path / 'answers.yaml'}: proxmox.url: required but missing" in stderr, stderr
    assert HINT in stderr, stderr


@pytest.mark.parametrize("command", ["check", "--auto"])
def test_a_file_without_its_target_names_proxmox_url(tmp_path, command):
    stderr = _refused(tmp_path, "vm: {vcpus: 8}\n", command)
    assert "answers.yaml:1:1: proxmox.url: required but missing" in stderr, stderr
    assert HINT in stderr, stderr


def test_headless_lists_every_missing_answer_at_once(tmp_path):
    """A real host named without its token: --auto names both token fields in one message."""
    stderr = _refused(tmp_path, "proxmox: {url: 'https://pve.example:8006'}\n", "--auto")
    assert "proxmox.token_id: required for a real Proxmox host" in stderr, stderr
    assert "proxmox.token_secret: required for a real Proxmox host" in stderr, stderr
    assert HINT in stderr, stderr
