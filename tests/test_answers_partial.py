"""Answers as far as they validate (backend/model/partial.py), what the wizard reopens: every value
that validates is loaded, each one that does not is set aside with the model's message and its text
(a secret's only when it is a reference), a missing required value takes the caller's default."""

from __future__ import annotations

import pytest

import backend.lab  # noqa: F401  - registers the 'lab' provider, as the entry point does
from backend.errors import BadInput
from backend.model.partial import load_partial, settle

LAB = {"proxmox": {"url": "lab"}}


def test_what_validates_is_loaded_and_an_invalid_value_keeps_its_text_and_message():
    partial = settle({"proxmox": {"url": "lab"}, "vm": {"vcpus": "lots", "memory_gib": 122, "vcpu": 3}}, LAB)
    assert partial.answers.vm.memory_gib == 122 and partial.answers.vm.vcpus == "auto"
    assert partial.problems == {"vm.vcpus": "must be a whole number or 'auto' (got 'lots')",
                                "vm.vcpu": "unknown key; did you mean 'vcpus'?"}
    assert partial.raw == {"vm.vcpus": "lots", "vm.vcpu": "3"}


def test_a_missing_target_takes_the_default_and_stays_a_problem():
    for data in ({}, {"proxmox": None}, {"vm": {"vcpus": 8}}):
        partial = settle(data, LAB)
        assert partial.answers.proxmox.url == "lab"
        assert partial.problems == {"proxmox.url": "required but missing"}


def test_a_real_host_without_its_token_is_set_aside_whole_its_texts_kept():
    partial = settle({"proxmox": {"url": "https://pve.example:8006", "token_id": "root@pam!vlb"}}, LAB)
    assert partial.answers.proxmox.url == "lab"
    assert partial.problems == {"proxmox.token_secret": "required for a real Proxmox host: env:NAME or file:PATH "
                                                        "of the token secret"}
    assert partial.raw == {"proxmox.url": "https://pve.example:8006", "proxmox.token_id": "root@pam!vlb"}


def test_a_secret_value_is_never_kept_a_reference_is():
    partial = settle({"proxmox": {"url": "lab"}, "guest": {"password": "hunter2-value", "key": "env:KEY", "port": 0}},
                     LAB)
    assert "guest.password" in partial.problems and "guest.password" not in partial.raw
    assert "hunter2-value" not in repr(partial)
    assert str(partial.answers.guest.key) == "env:KEY" and partial.raw == {"guest.port": "0"}


@pytest.mark.parametrize("text, said", [(None, "no such answers file"), ("vm: [", "invalid YAML"),
                                        ("- a\n", "must be a mapping")])
def test_a_file_that_cannot_be_read_is_bad_input(tmp_path, text, said):
    path = tmp_path / "a.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(BadInput, match=said):
        load_partial(path, LAB)
