"""The lab's VMS over real HTTPS, queried by the real vastpy; every answer valid against the 5.4 schema,
but for a VTask's `messages` in the lab's default shape: the schema types it as an object while the
clients read a list of strings (ground-truth §11; nobody has a real sample), so the lab answers
either (`lab.vtask_messages`) and the object shape is checked against the schema in full.

The world behind it is made by the guest-side VAST stand-ins (run at 20 000 x in a temporary guest
root), exactly as in the lab guest."""

from __future__ import annotations

import json
import socket

import pytest
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from vastpy import RESTFailure, VASTClient

from backend.clock import Clock
from backend.lab.facts import VMS_CERT_PATH
from backend.lab.faults import FaultPlan, ScheduledFault
from backend.lab.scenarios import VastBehaviour
from backend.lab.vms.resources import SCHEMAS
from backend.lab.vms.server import VmsServer
from tests.conftest import shared_path
from tests.vast_lab_helpers import CREATE_ARGS, IP, VMS_PASSWORD, hardware, make_guest, serve_vms


@pytest.fixture(scope="module")
def schema_validators():
    doc = json.loads(shared_path("vast-api", "vms-openapi-5.4.json").read_text())
    registry = Registry().with_resource("urn:vms", Resource.from_contents(doc, default_specification=DRAFT4))
    return {name: Draft4Validator({"$ref": f"urn:vms#/components/schemas/{name}"}, registry=registry)
            for name in set(SCHEMAS.values())}


def _server(tmp_path, guest_root, speed: float = 1.0, **options) -> VmsServer:
    return VmsServer(tmp_path / "state", Clock.scaled(speed), guest_root, **options).start()


def _verified(server: VmsServer) -> dict[str, str]:
    """vastpy's own verification (`cert_file`) of the certificate the guest's VMS made (issued to its IP)."""
    return {"cert_file": str(server.guest.host(VMS_CERT_PATH)), "cert_server_name": IP}


def _client(server: VmsServer, **options) -> VASTClient:
    return VASTClient(user=options.get("user", "admin"), password=options.get("password", "123456"),
                      address=f"127.0.0.1:{server.port}", **_verified(server))


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


@pytest.fixture(scope="module")
def online(tmp_path_factory):
    """A guest whose success install ran to the end, and its VMS."""
    guest = make_guest(tmp_path_factory.mktemp("guest"))
    assert guest.bootstrap().returncode == 0 and guest.create().returncode == 0
    server = _server(tmp_path_factory.mktemp("lab"), guest.root)
    assert server.wait_listening(True)
    yield guest, server
    server.stop()


def test_vms_is_not_there_before_bootstrap_brings_it_up(tmp_path):
    guest = make_guest(tmp_path / "guest")
    server = _server(tmp_path, guest.root)
    try:
        assert not server.wait_listening(True, timeout=0.3)
        assert _refused(server.port)
        assert guest.bootstrap().returncode == 0
        assert server.wait_listening(True)
        assert _client(server).clusters.get() == []  # VMS up, no cluster yet
    finally:
        server.stop()


def test_vastpy_reads_the_online_cluster(online):
    _, server = online
    client = _client(server)
    cluster = client.clusters.get()[0]
    assert (cluster["name"], cluster["state"], cluster["loopback"], cluster["build"]) == (
        "lb-vast54", "ONLINE", True, "release-5-4-0-2043819")
    assert client.clusters[cluster["id"]].get()["state"] == "ONLINE"
    task = client.vtasks.get(name="cluster_deploy")[0]
    assert (task["id"], task["state"], task["execution_time"]) == (2, "COMPLETED", 1064)
    assert client.vtasks.get(state="RUNNING") == []
    hosts = client.hosts.get(fields="host_label,node_type,install_state")
    assert hosts == [{"host_label": f"11.0.0.1-{port}", "node_type": kind, "install_state": "INSTALLED"}
                     for port, kind in (("4400", "DNODE"), ("4300", "DNODE"), ("4200", "CNODE"), ("4100", "CNODE"))]
    assert [c["name"] for c in client.cnodes.get()] == ["cnode-1", "cnode-2"]
    assert {d["state"] for d in client.dnodes.get()} == {"ACTIVE"}
    assert client.licenses.get()[0]["state"] == "ACTIVE"


def test_unversioned_and_numbered_api_paths_answer_too(online):
    _, server = online
    unversioned = VASTClient(user="admin", password="123456", address=f"127.0.0.1:{server.port}", version=None,
                             **_verified(server))
    assert unversioned.clusters.get()[0]["name"] == "lb-vast54"
    v5 = VASTClient(user="admin", password="123456", address=f"127.0.0.1:{server.port}", version="v5",
                    **_verified(server))
    assert v5.vtasks.get()[0]["name"] == "cluster_deploy"


def _schema_errors(validator, collection: str, item: dict) -> list:
    """Schema errors of one item; a VTask's `messages` as a list of strings is the clients' shape, not an
    error (checked on its own)."""
    if collection == "vtasks" and isinstance(item.get("messages"), list):
        assert all(isinstance(text, str) for text in item["messages"]), item["messages"]
        item = {k: v for k, v in item.items() if k != "messages"}
    return sorted(validator.iter_errors(item), key=str)


def test_every_answer_is_valid_against_the_54_schema(online, schema_validators):
    _, server = online
    client = _client(server)
    for collection, schema in SCHEMAS.items():
        items = client[collection].get()
        assert items, collection
        for item in items:
            errors = _schema_errors(schema_validators[schema], collection, item)
            assert not errors, f"{collection}: {errors[0].message}"


@pytest.mark.parametrize("shape", ["list", "object"])
def test_failed_worlds_are_valid_too_with_the_messages_in_either_shape(tmp_path, schema_validators, shape):
    guest = make_guest(tmp_path / "guest", hardware(vcpus=24), behaviour=VastBehaviour(vtask_messages=shape))
    assert guest.bootstrap().returncode == 0 and guest.create().returncode == 1
    server = _server(tmp_path, guest.root)
    try:
        assert server.wait_listening(True)
        client = _client(server)
        cluster = client.clusters.get()[0]
        assert cluster["state"] == "INIT" and cluster["leader_state"] == "UP"
        task = client.vtasks.get(name="cluster_deploy")[0]
        messages = task["messages"]
        assert type(messages) is (list if shape == "list" else dict)
        texts = messages if shape == "list" else list(messages.values())
        assert task["state"] == "FAILED" and len(texts) == 1 and "PANIC[P653]" in texts[0]
        for collection, schema in SCHEMAS.items():
            for item in client[collection].get():
                validator = schema_validators[schema]
                errors = (_schema_errors(validator, collection, item) if shape == "list"
                          else list(validator.iter_errors(item)))  # the object shape is the schema's
                assert not errors, collection
    finally:
        server.stop()


def test_paginated_shape_when_page_is_given(online):
    _, server = online
    client = _client(server)
    first = client.hosts.get(page=1, page_size=3)
    assert first["count"] == 4 and first["previous"] is None and len(first["results"]) == 3
    assert "page=2" in first["next"]
    second = client.hosts.get(page=2, page_size=3)
    assert second["next"] is None and len(second["results"]) == 1 and "page=1" in second["previous"]


def test_basic_auth_and_api_tokens(online):
    _, server = online
    with pytest.raises(RESTFailure) as refused:
        _client(server, password="wrong").clusters.get()
    assert refused.value.status == 401
    token = _client(server).apitokens.post(owner="admin")["token"]
    by_token = VASTClient(address=f"127.0.0.1:{server.port}", token=token, **_verified(server))
    assert by_token.clusters.get()[0]["state"] == "ONLINE"
    with pytest.raises(RESTFailure) as bad:
        VASTClient(address=f"127.0.0.1:{server.port}", token="not-a-token", **_verified(server)).clusters.get()
    assert bad.value.status == 401


def test_unknown_paths_and_methods(online):
    _, server = online
    client = _client(server)
    with pytest.raises(RESTFailure) as missing:
        client.nosuchthing.get()
    assert missing.value.status == 404
    with pytest.raises(RESTFailure) as not_allowed:
        client.clusters.delete()
    assert not_allowed.value.status == 405
    with pytest.raises(RESTFailure) as no_id:
        client.vtasks[99].get()
    assert no_id.value.status == 404


def test_every_request_is_logged_without_credentials(online):
    _, server = online
    _client(server).vtasks.get(name="cluster_deploy")
    lines = [json.loads(line) for line in server.requests_log.read_text().splitlines()]
    last = lines[-1]
    assert (last["method"], last["path"], last["query"], last["status"]) == (
        "GET", "/api/latest/vtasks/", {"name": "cluster_deploy"}, 200)
    assert last["auth"] == "basic:admin"
    assert "123456" not in server.requests_log.read_text()


def test_a_restart_refuses_connections_for_a_lab_minute(tmp_path, online):
    guest, _ = online
    server = _server(tmp_path, guest.root, speed=300.0)  # a lab minute is 0.2 s
    try:
        assert server.wait_listening(True)
        server.restart()
        assert server.wait_listening(False, timeout=1)
        assert _refused(server.port)
        assert server.wait_listening(True, timeout=3)
        assert _client(server).clusters.get()[0]["state"] == "ONLINE"
    finally:
        server.stop()


def test_the_vms_restart_fault_answers_502_then_restarts(tmp_path, online):
    guest, _ = online
    faults = FaultPlan(schedule=[ScheduledFault("vms_restart", path="clusters", nth=2)],
                       record=tmp_path / "faults.jsonl")
    server = _server(tmp_path, guest.root, speed=300.0, faults=faults)
    try:
        assert server.wait_listening(True)
        client = _client(server)
        client.clusters.get()
        with pytest.raises(RESTFailure) as failure:
            client.clusters.get()
        assert failure.value.status == 502
        assert server.wait_listening(False, timeout=1) and server.wait_listening(True, timeout=3)
        assert json.loads((tmp_path / "faults.jsonl").read_text())["kind"] == "vms_restart"
    finally:
        server.stop()


def test_vms_goes_away_with_the_guest_and_after_a_reboot(tmp_path, online):
    guest, _ = online
    up = {"value": True}
    server = _server(tmp_path, guest.root, guest_up=lambda: up["value"])
    try:
        assert server.wait_listening(True)
        up["value"] = False  # the VM was stopped
        assert server.wait_listening(False)
        up["value"] = True
        assert server.wait_listening(True)
        scenario = json.loads((guest.root / "run/lab/vast/scenario.json").read_text())
        booted = dict(scenario, boot_t=guest.world().last_t + 10)  # rebooted since VMS came up
        (guest.root / "run/lab/vast/scenario.json").write_text(json.dumps(booted))
        assert server.wait_listening(False)  # its containers did not survive the reboot
    finally:
        (guest.root / "run/lab/vast/scenario.json").write_text(json.dumps(scenario))
        server.stop()


def test_a_new_vms_process_picks_up_the_world_where_it_is(tmp_path):
    """The lab process dies mid-install; the guest's tools carry on; a new VMS reads where they are."""
    guest = make_guest(tmp_path / "guest", speed=800.0)  # the cluster create lasts ~1.3 s of wall time
    assert guest.bootstrap().returncode == 0
    first = serve_vms(guest, tmp_path / "one")  # vcli logs in to it
    running = guest.start("/vast/deploy/vman.sh", *CREATE_ARGS, "--name", "lb-vast54", "--loopback",
                          env={"VMS_PASSWORD": VMS_PASSWORD})
    try:
        assert first.wait_listening(True)
        client = _client(first)
        seen = set()
        while not seen & {"ACTIVATING", "INSTALLING", "INIT"}:
            seen |= {c["state"] for c in client.clusters.get()}
    finally:
        first.stop()  # as if the lab process were killed
    assert running.poll() is None  # the install carries on inside the guest
    assert running.wait(timeout=20) == 0
    second = _server(tmp_path / "two", guest.root)
    try:
        assert second.wait_listening(True)
        client = _client(second)
        assert client.clusters.get()[0]["state"] == "ONLINE"
        assert client.vtasks.get(name="cluster_deploy")[0]["state"] == "COMPLETED"
    finally:
        second.stop()
