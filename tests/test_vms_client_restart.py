"""The engine's VMS client (backend/clients/vms.py) against the lab's VMS over HTTPS: plain dicts, states
never checked against a list, timeouts, and riding through a VMS restart with events."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from backend.clients.vms import VmsClient, VmsUnreachable
from backend.clients.vmstrust import VmsTrust, first_certificate
from backend.clock import Clock
from backend.errors import RunFailed
from backend.events import RecoveredFromFault, RetryScheduled
from backend.lab.facts import VMS_CERT_PATH
from backend.lab.pve.tls import ensure_certificate
from backend.lab.vast import EVENTS_PATH
from backend.lab.vast.vaststate import append_event
from backend.lab.vms.server import VmsServer
from backend.run.bus import EventBus
from backend.secrets import Secret
from tests.vast_lab_helpers import make_guest

SPEED = 600.0  # a lab minute is 0.1 s


@pytest.fixture(scope="module")
def online(tmp_path_factory):
    guest = make_guest(tmp_path_factory.mktemp("guest"))
    assert guest.bootstrap().returncode == 0 and guest.create().returncode == 0
    return guest


def _served(tmp_path, guest_root, clock: Clock) -> VmsServer:
    server = VmsServer(tmp_path / "lab", clock, guest_root).start()
    server.guest_root = guest_root
    return server


def guest_trust(guest_root) -> VmsTrust:
    """The certificate the guest's VMS made at the bootstrap, pinned (as the run pins it over SSH)."""
    der = first_certificate((guest_root / VMS_CERT_PATH.lstrip("/")).read_text())
    return VmsTrust.pinned(der, "the guest's own (test)")


def other_trust(tmp_path) -> VmsTrust:
    """A pin on some other certificate (for servers that never answer anyway)."""
    cert, _, _ = ensure_certificate(tmp_path / "other-tls", "other.example")
    return VmsTrust.pinned(first_certificate(cert.read_text()), "another certificate (test)")


def _client(server: VmsServer, clock: Clock, bus: EventBus | None = None, **options) -> VmsClient:
    trust = options.pop("trust", None) or guest_trust(server.guest_root)
    return VmsClient(("127.0.0.1", server.port), "admin", options.pop("password", Secret("123456")), trust=trust,
                     clock=clock, bus=bus, **options)


async def test_reads_cluster_task_and_nodes_as_plain_dicts(tmp_path, online):
    clock = Clock.scaled(SPEED)
    server = _served(tmp_path, online.root, clock)
    try:
        assert server.wait_listening(True)
        client = _client(server, clock)
        cluster = await client.cluster()
        assert type(cluster) is dict and cluster["state"] == "ONLINE"
        task = await client.vtask("cluster_deploy")
        assert (task["id"], task["state"]) == (2, "COMPLETED")
        assert await client.vtask("no_such_task") is None
        assert [h["install_state"] for h in await client.hosts()] == ["INSTALLED"] * 4
        assert len(await client.cnodes()) == 2 and len(await client.dnodes()) == 2
        assert (await client.licenses())[0]["state"] == "ACTIVE"
        assert client.errors == 0
        paths = server.requests_log.read_text()
        assert "/api/latest/clusters/" in paths and "/api/latest/vtasks/" in paths  # vastpy's URLs
    finally:
        server.stop()


async def test_the_run_reaches_vms_through_the_targets_route_with_the_answers_credentials(tmp_path, online):
    from types import SimpleNamespace

    from backend.model.answers import Answers
    from backend.target import Target

    clock = Clock.scaled(SPEED)
    server = _served(tmp_path, online.root, clock)
    asked = []

    def route(host: str, port: int) -> tuple[str, int]:
        asked.append((host, port))
        return "127.0.0.1", server.port

    target = Target(label="lab", proxmox_url="lab://", token_id="t", token_secret=Secret("x"), clock=clock,
                    route=route)
    ctx = SimpleNamespace(answers=Answers.model_validate({"proxmox": {"url": "lab"}}), target=target, bus=EventBus(clock))
    try:
        assert server.wait_listening(True)
        client = VmsClient.for_run(ctx, "192.168.30.109", trust=guest_trust(online.root))
        assert asked == [("192.168.30.109", 443)]
        assert (await client.cluster())["name"] == "lb-vast54"
    finally:
        server.stop()


async def test_no_cluster_yet_is_none_and_new_states_pass_through(tmp_path):
    guest = make_guest(tmp_path / "guest")
    assert guest.bootstrap().returncode == 0
    clock = Clock.scaled(SPEED)
    server = _served(tmp_path, guest.root, clock)
    try:
        assert server.wait_listening(True)
        client = _client(server, clock)
        assert await client.cluster() is None
        events = guest.root / EVENTS_PATH.lstrip("/")
        append_event(events, clock.now(), "cluster", state="BOOTSTRAP", name="lb")  # 5.4-only state
        assert (await client.cluster())["state"] == "BOOTSTRAP"
    finally:
        server.stop()


async def test_rides_through_a_vms_restart_and_says_so(tmp_path, online):
    clock = Clock.scaled(SPEED)
    server = _served(tmp_path, online.root, clock)
    bus = EventBus(clock)
    seen = []
    bus.subscribe(seen.append)
    try:
        assert server.wait_listening(True)
        client = _client(server, clock, bus)
        server.restart(60)
        assert server.wait_listening(False)
        cluster = await client.cluster()  # refused while VMS restarts, then answered
        assert cluster["state"] == "ONLINE"
        retries = [e for e in seen if isinstance(e, RetryScheduled)]
        assert retries and retries[0].operation == "VMS GET clusters" and retries[0].error == "connection refused"
        recovered = [e for e in seen if isinstance(e, RecoveredFromFault)]
        assert len(recovered) == 1 and recovered[0].attempts == len(retries) + 1
        assert client.errors == len(retries)
    finally:
        server.stop()


async def test_gives_up_when_vms_never_comes(tmp_path):
    guest = make_guest(tmp_path / "guest")  # never bootstrapped: nothing listens
    clock = Clock.scaled(SPEED)
    server = _served(tmp_path, guest.root, clock)
    try:
        client = _client(server, clock, give_up_s=120, trust=other_trust(tmp_path))
        with pytest.raises(VmsUnreachable) as failure:
            await client.cluster()
        assert "has not answered for 2 minutes" in str(failure.value)
        assert client.errors >= 3
        assert await client.reachable() is False
    finally:
        server.stop()


async def test_refused_credentials_fail_at_once(tmp_path, online):
    clock = Clock.scaled(SPEED)
    server = _served(tmp_path, online.root, clock)
    try:
        assert server.wait_listening(True)
        client = _client(server, clock, password=Secret("not-the-password"))
        with pytest.raises(RunFailed) as failure:
            await client.cluster()
        assert "refused the credentials of user 'admin'" in str(failure.value)
        assert "not-the-password" not in str(failure.value)
        assert client.errors == 0
    finally:
        server.stop()


async def test_a_silent_server_times_out_instead_of_hanging(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    stop = threading.Event()

    def accept() -> None:  # accepts and never answers, like a VMS wedged mid-restart
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    clock = Clock.scaled(SPEED)
    try:
        client = VmsClient(listener.getsockname(), "admin", Secret("123456"), clock=clock, give_up_s=1,
                           trust=other_trust(tmp_path))
        started = time.monotonic()
        with pytest.raises(VmsUnreachable):
            await client.cluster()
        assert time.monotonic() - started < 10  # the 2 s wall floor of each timeout, not for ever
        assert client.errors >= 1
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()
