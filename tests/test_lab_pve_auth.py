"""The lab's Proxmox API authenticates like Proxmox: tokens, tickets with CSRF, 401 reasons, TLS pin."""

from __future__ import annotations

import json

import pytest
import requests
from proxmoxer import ProxmoxAPI, ResourceException
from proxmoxer.core import AuthenticationError

from backend.lab.world import LabWorld
from backend.target import fetch_certificate_fingerprint
from tests.lab_pve_support import SECRET, client, start_world

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture
def world(tmp_path):
    world = start_world(tmp_path / "lab")
    yield world
    world.stop()


def test_token_auth_answers_and_a_wrong_secret_gets_401(world):
    assert client(world).version.get()["version"] == "9.1.3"
    with pytest.raises(ResourceException) as info:
        client(world, secret="wrong-secret").version.get()
    assert info.value.status_code == 401
    assert info.value.content == "invalid token value!"


def test_no_credentials_is_401_no_ticket(world):
    answer = requests.get(world.pve.url + "/api2/json/version", verify=False, timeout=5)
    assert (answer.status_code, answer.reason) == (401, "No ticket")


def test_space_separated_token_header_is_accepted(world):
    header = {"Authorization": f"PVEAPIToken root@pam!vlb={SECRET}"}
    answer = requests.get(world.pve.url + "/api2/json/version", headers=header, verify=False, timeout=5)
    assert answer.status_code == 200
    assert answer.json()["data"]["release"] == "9.1"


def test_ticket_auth_with_proxmoxer_and_csrf_required_on_post(world):
    pve = world.pve
    api = ProxmoxAPI(f"127.0.0.1:{pve.port}", user="root@pam", password=pve.password, verify_ssl=False, timeout=10)
    assert api.nodes.get()[0]["node"] == "pve"
    assert api.nodes("pve").qemu.post(vmid=100, name="csrf-ok", memory=512).startswith("UPID:pve:")

    ticket = requests.post(pve.url + "/api2/json/access/ticket", data={"username": "root@pam",
                           "password": pve.password}, verify=False, timeout=5).json()["data"]
    cookie = {"PVEAuthCookie": ticket["ticket"]}
    url = pve.url + "/api2/json/nodes/pve/qemu"
    assert requests.get(url, cookies=cookie, verify=False, timeout=5).status_code == 200
    refused = requests.post(url, data={"vmid": 101}, cookies=cookie, verify=False, timeout=5)
    assert (refused.status_code, refused.reason) == (401, "Permission denied - invalid csrf token")
    accepted = requests.post(url, data={"vmid": 101}, cookies=cookie, verify=False, timeout=5,
                             headers={"CSRFPreventionToken": ticket["CSRFPreventionToken"]})
    assert accepted.status_code == 200


def test_wrong_password_and_ticket_renewal(world):
    url = world.pve.url + "/api2/json/access/ticket"
    with pytest.raises(AuthenticationError):
        ProxmoxAPI(f"127.0.0.1:{world.pve.port}", user="root@pam", password="nope", verify_ssl=False)
    bad = requests.post(url, data={"username": "root@pam", "password": "nope"}, verify=False, timeout=5)
    assert (bad.status_code, bad.reason) == (401, "authentication failure")
    first = requests.post(url, data={"username": "root@pam", "password": world.pve.password},
                          verify=False, timeout=5).json()["data"]["ticket"]
    renewed = requests.post(url, data={"username": "root@pam", "password": first}, verify=False, timeout=5)
    assert renewed.status_code == 200 and renewed.json()["data"]["ticket"].startswith("PVE:root@pam:")


def test_ticket_expires_after_two_lab_hours(tmp_path):
    world = start_world(tmp_path / "lab", speed=3600)  # 2 lab hours = 2 wall seconds
    try:
        url = world.pve.url + "/api2/json"
        ticket = requests.post(url + "/access/ticket", data={"username": "root@pam", "password": world.pve.password},
                               verify=False, timeout=5).json()["data"]["ticket"]
        assert requests.get(url + "/nodes", cookies={"PVEAuthCookie": ticket}, verify=False, timeout=5).ok
        world.clock.origin_target -= 2 * 3600 + 301  # let 2 h and the grace period pass on the lab clock
        late = requests.get(url + "/nodes", cookies={"PVEAuthCookie": ticket}, verify=False, timeout=5)
        assert (late.status_code, late.reason) == (401, "permission denied - invalid PVE ticket")
    finally:
        world.stop()


def test_tls_fingerprint_is_what_a_client_sees_and_stays_with_the_state_dir(tmp_path):
    world = start_world(tmp_path / "lab")
    first = world.pve.fingerprint
    try:
        assert fetch_certificate_fingerprint(world.pve.url) == first
        assert client(world).nodes.get()[0]["ssl_fingerprint"] == first
    finally:
        world.stop()
    again = start_world(tmp_path / "lab")
    try:
        assert again.pve.fingerprint == first
    finally:
        again.stop()


def test_request_log_has_every_request_and_no_secret(world):
    pve = world.pve
    api = client(world)
    api.cluster.nextid.get()
    api.nodes("pve").storage.get(content="images")
    requests.post(pve.url + "/api2/json/access/ticket", data={"username": "root@pam", "password": pve.password},
                  verify=False, timeout=5)
    text = (world.state_dir / "pve-requests.jsonl").read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    first = {k: lines[0][k] for k in ("method", "path", "params")}
    assert first == {"method": "GET", "path": "/cluster/nextid", "params": {}}
    assert lines[1]["params"] == {"content": "images"}
    assert lines[2]["params"] == {"username": "root@pam", "password": "***"}
    assert SECRET not in text and pve.password not in text


@pytest.mark.parametrize("secret", ["abc,def-1234", ",leading-comma", "a, b, c-1234", "trailing-comma,"])
def test_a_token_secret_with_commas_authenticates(tmp_path, secret):
    world = LabWorld(tmp_path / "lab", "seed", 600, token_secret=secret).start()
    try:
        assert client(world, secret=secret).version.get()["version"] == "9.1.3"
        header = {"Authorization": f"PVEAPIToken=root@pam!vlb={secret}"}
        answer = requests.get(world.pve.url + "/api2/json/version", headers=header, verify=False, timeout=5)
        assert answer.status_code == 200
    finally:
        world.stop()


def test_the_token_is_split_at_its_last_equals_sign_as_proxmox_does(world):
    """AccessControl.pm verify_token: /^(.*)=(.*)$/, greedy: a secret holding '=' can never authenticate
    (the tool refuses such a secret at load)."""
    header = {"Authorization": f"PVEAPIToken=root@pam!vlb={SECRET}=x"}
    answer = requests.get(world.pve.url + "/api2/json/version", headers=header, verify=False, timeout=5)
    assert answer.status_code == 401
    assert answer.reason == f"'root@pam!vlb={SECRET}' is not a valid token ID - not able to split into user and token parts"
