"""The answers file: parsing, clear errors with file:line:col, secrets as references, the schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.errors import BadInput
from backend.model import answers as A
from backend.secrets import Secret, SecretRef, redact

REPO = Path(__file__).resolve().parent.parent

FULL = """\
proxmox:
  url: https://pve.example:8006
  token_id: root@pam!vlb
  token_secret: env:PVE_TOKEN
  node: auto
vm: {name: vast-lb, vcpus: 12, memory_gib: 120, disk_gib: 1000, storage: local-lvm, bridge: vmbr0}
ova: local:import/vast-5.4.0-loopback.ova
guest: {address: dhcp, user: centos}
vast: {build: release-5-4-0-2043819, cluster_name: lb-vast54}
"""


def test_full_file_parses_with_the_issue_key_names():
    answers = A.parse(FULL, "a.yaml")
    assert answers.vm.vcpus == 12 and answers.vm.memory_gib == 120
    assert answers.proxmox.token_secret == SecretRef("env", "PVE_TOKEN")
    assert answers.guest.address == "dhcp"


def test_saved_file_replays_to_the_same_answers_and_holds_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("PVE_TOKEN", "s3cr3t-token-value")
    answers = A.parse(FULL)
    answers.proxmox.token_secret.resolve()
    path = A.save(answers, tmp_path / "out.yaml")
    text = path.read_text()
    assert "s3cr3t-token-value" not in text and "env:PVE_TOKEN" in text
    assert "memory_gib: 120" in text and "bridge: vmbr0" in text  # defaults written out, not left implicit
    assert A.load(path) == answers
    assert path.stat().st_mode & 0o777 == 0o600


def _error(text: str) -> str:
    with pytest.raises(BadInput) as info:
        A.parse(text, "answers.yaml")
    assert info.value.exit_code == 2
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("vm:\n  vcpu: 12\n", ["answers.yaml:2:3", "vm.vcpu", "unknown key", "did you mean 'vcpus'"]),
        ("vm:\n  vcpus: twelve\n", ["answers.yaml:2:3", "vm.vcpus", "whole number or 'auto'", "'twelve'"]),
        ("vm: {name: 'a;rm -rf /'}\n", ["vm.name", "DNS name"]),
        ("vm: {name: -bad}\n", ["vm.name", "DNS name"]),
        ("proxmox: {url: 'https://x:8006', token_id: 'root@pam!t', token_secret: hunter2}\n",
         ["proxmox.token_secret", "reference"]),
        ("proxmox: {url: 'https://x:8006'}\n", ["proxmox.token_id: required for a real Proxmox host",
                                               "proxmox.token_secret: required for a real Proxmox host"]),
        ("proxmox: {url: 'http://x:8006', token_id: 'root@pam!t', token_secret: 'env:X'}\n", ["proxmox.url", "https"]),
        ("guest: {address: 300.1.1.1}\n", ["guest.address"]),
        ("ova: /tmp/x.ova\n", ["ova", "volid"]),
        ("vm: [1, 2]\n", ["vm"]),
        ("- just\n- a list\n", ["must be a mapping"]),
        ("a: &x [1]\nb: *x\n", ["anchors", "not allowed"]),
        ("vm: !!python/object/apply:os.system ['id']\n", ["not allowed"]),
        ("vm: {vcpus: 1, vcpus: 2}\n", ["appears twice"]),
        ("vm: {name: x\n", ["invalid YAML"]),
    ],
)
def test_bad_input_is_one_clear_message(text, expected):
    message = _error(text)
    for part in expected:
        assert part in message, message
    assert "Traceback" not in message


def test_size_limit_and_binary_are_refused():
    assert "limited" in _error("a: '" + "x" * 300_000 + "'\n")
    with pytest.raises(BadInput):
        A.parse(b"proxmox: {url: lab}\n\xff\xfe\x00garbage", "bin.yaml")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(BadInput, match="no such answers file"):
        A.load(tmp_path / "nope.yaml")
    with pytest.raises(BadInput, match="is a directory"):
        A.load(tmp_path)


def test_secret_references_resolve_late_with_clear_messages(tmp_path, monkeypatch):
    monkeypatch.delenv("VLB_TEST_MISSING", raising=False)
    with pytest.raises(BadInput, match="VLB_TEST_MISSING is not set"):
        SecretRef.parse("env:VLB_TEST_MISSING").resolve("proxmox.token_secret")
    secret_file = tmp_path / "token"
    secret_file.write_text("abcd-1234-secret\n")
    secret = SecretRef.parse(f"file:{secret_file}").resolve()
    assert secret.reveal() == "abcd-1234-secret"
    assert "abcd" not in repr(secret) and "abcd" not in f"{secret}"
    assert redact("token=abcd-1234-secret!") == "token=***!"
    with pytest.raises(BadInput, match="does not exist"):
        SecretRef.parse(f"file:{tmp_path / 'none'}").resolve()
    assert isinstance(secret, Secret)


def test_committed_schema_matches_the_model():
    committed = json.loads((REPO / "backend" / "model" / "answers.schema.json").read_text())
    assert committed == A.json_schema(), "regenerate with: vast-loopback schema > backend/model/answers.schema.json"


def test_schema_describes_the_documented_keys():
    schema = A.json_schema()
    assert {"proxmox", "vm", "ova", "guest", "vast"} <= set(schema["properties"])
    vm = schema["$defs"]["VmAnswers"]["properties"]
    assert {"name", "vcpus", "memory_gib", "disk_gib", "storage", "bridge"} <= set(vm)


def test_redaction_keeps_json_numbers_intact_and_public_defaults_visible():
    from backend.secrets import redact_data

    Secret("987654")
    data = {"ts": 1767987654.5, "text": "pw=987654", "path": "/home/centos", "nested": [{"v": "987654"}]}
    assert redact_data(data) == {"ts": 1767987654.5, "text": "pw=***", "path": "/home/centos",
                                 "nested": [{"v": "***"}]}
    Secret("centos", public=True)
    assert redact("/home/centos") == "/home/centos"


def test_an_answers_file_must_name_its_target():
    """No default target: an empty file, or one without proxmox.url, is bad input naming the field
    by its dotted name (the built-in lab is `url: lab`, a provider registered by name), with the hint
    where a complete file comes from."""
    for text in ("", "{}\n", "vm: {vcpus: 12}\n", "proxmox: {node: auto}\n", "proxmox:\n"):
        message = _error(text)
        assert "proxmox.url: required but missing" in message, message
        assert "hint: run the wizard (vast-loopback)" in message and "vast-loopback schema" in message, message


def test_every_missing_required_answer_is_named_at_once():
    """A real host without its token: both fields named, beside any other problem of the file."""
    message = _error("proxmox: {url: 'https://pve.example:8006'}\nvm: {vcpus: lots}\n")
    lines = [line for line in message.splitlines() if not line.startswith("  hint:")]
    assert [line.split(": ")[1] for line in lines] == ["proxmox.token_id", "proxmox.token_secret", "vm.vcpus"]
    assert "hint: run the wizard" in message
    assert "hint:" not in _error("proxmox: {url: lab}\nvm: {vcpus: lots}\n")  # nothing missing: no such hint
    assert A.parse("proxmox: {url: lab}\n").proxmox.url == "lab"
    assert "'lab' or https://" in _error("proxmox: {url: 'ftp://x'}\n")


def test_a_providers_section_is_validated_by_its_own_model_and_saved_explicitly(tmp_path):
    assert "lab.faults.rate" in _error("proxmox: {url: lab}\nlab: {faults: {rate: 3}}\n")
    assert "lab.host_profil" in _error("proxmox: {url: lab}\nlab: {host_profil: seed}\n")
    answers = A.parse("proxmox: {url: lab}\nlab: {host_profile: big}\n")
    assert answers.section("lab").host_profile == "big"
    saved = A.save(answers, tmp_path / "a.yaml").read_text()
    assert "host_profile: big" in saved and A.load(tmp_path / "a.yaml") == answers
    assert "lab" in A.json_schema()["properties"]
