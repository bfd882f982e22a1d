"""How a run comes to trust the VMS's certificate (backend/clients/vmstrust.py), against a lab guest over real
SSH: the certificate the guest keeps is read over the trusted connection and pinned; a guest that
keeps none there leaves the question to the user (trust on first use in the wizard), whose "no"
sends nothing; and the wizard's question itself (a Pilot test)."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

import ipaddress
import ssl

import pytest
from cryptography import x509

from backend.clients.commands import sh
from backend.clients.guestssh import GuestClient, GuestCredentials
from backend.clients.vmstrust import CONFIRM_VMS_CERTIFICATE, establish
from backend.errors import RunFailed
from backend.events import SnapshotRolledBack
from backend.model.answers import Answers
from backend.run.bus import EventBus
from backend.run.engine import RunContext
from backend.run.journal import Journal, RunDir
from backend.secrets import Secret
from backend.target import Target, certificate_fingerprint
from tests.lab_fixtures import guest_lab, running_guest  # noqa: F401
from tests.test_vms_certificate import Impostor, issue
from tests.tui_helpers import make_app

CENTOS = GuestCredentials("centos", password=Secret("centos", public=True))
CERT_PATH = "/vast/vman/vms/ssl/vms.crt"


def _context(tmp_path, guest, vms_address: tuple[str, int], **vast: str) -> RunContext:
    def route(host: str, port: int) -> tuple[str, int]:
        return vms_address if (host, port) == (guest.hw.ip, 443) else guest.lab.route(host, port)

    target = Target(label="lab", proxmox_url="lab://", token_id="t", token_secret=Secret("not-used"),
                    clock=guest.lab.clock, route=route)
    answers = Answers.model_validate({"proxmox": {"url": "lab"}, "vast": {"cert_path": CERT_PATH, **vast}})
    ctx = RunContext(answers=answers, target=target, bus=EventBus(guest.lab.clock),
                     run=RunDir.create(tmp_path / "run"))
    ctx.seen = []
    ctx.bus.subscribe(ctx.seen.append)
    return ctx


async def _ssh(guest) -> GuestClient:
    return await GuestClient.connect(guest.hw.ip, 22, CENTOS, route=guest.lab.route, clock=guest.lab.clock,
                                     label=f"centos@{guest.hw.ip}", known_hosts=guest.known_hosts)


@pytest.fixture
def presented(tmp_path):
    """A server on the guest's VMS address, with its own certificate."""
    cert, key, _ = issue(tmp_path / "vms", "vms", sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    with Impostor(cert, key) as server:
        server.fingerprint = certificate_fingerprint(ssl.PEM_cert_to_DER_cert(cert.read_text()))
        server.cert = cert
        yield server


async def test_the_certificate_the_guest_keeps_is_pinned_through_ssh(tmp_path, running_guest, presented):
    text = presented.cert.read_text()
    done = running_guest.lab.exec(running_guest.vmid, f"mkdir -p /vast/vman/vms/ssl && cat > {sh(CERT_PATH)}",
                                  input=text)
    assert done.returncode == 0, done.stderr
    guest = await _ssh(running_guest)
    try:
        ctx = _context(tmp_path, running_guest, presented.address)
        trust = await establish(ctx, guest, running_guest.hw.ip)
        assert trust.fingerprint == presented.fingerprint and not trust.ca_file
        assert trust.source == f"the guest's own: {CERT_PATH} read over SSH, host key {guest.host_key}"
        assert [e.kind for e in ctx.seen if e.kind == "VmsCertificateTrusted"] == ["VmsCertificateTrusted"]
        wrong = ":".join(["00"] * 32)
        with pytest.raises(RunFailed, match=f"vast.fingerprint pins {wrong}; refusing to send the VMS password"):
            await establish(_context(tmp_path / "2", running_guest, presented.address, fingerprint=wrong),
                            guest, running_guest.hw.ip)
    finally:
        running_guest.lab.exec(running_guest.vmid, f"rm -f {sh(CERT_PATH)}")
        await guest.close()
    assert presented.requests == []  # establishing the trust sends no request to the VMS


@pytest.mark.parametrize("answer", [True, False])
async def test_without_a_certificate_on_the_guest_the_user_is_asked(tmp_path, running_guest, presented, answer):
    running_guest.lab.exec(running_guest.vmid, f"rm -f {sh(CERT_PATH)}")
    guest = await _ssh(running_guest)
    asked: list[str] = []

    async def confirm(fingerprint: str) -> bool:
        asked.append(fingerprint)
        return answer

    try:
        ctx = _context(tmp_path, running_guest, presented.address)
        ctx.services[CONFIRM_VMS_CERTIFICATE] = confirm
        if answer:
            trust = await establish(ctx, guest, running_guest.hw.ip)
            assert (trust.fingerprint, trust.source) == (presented.fingerprint, "confirmed by the user")
        else:
            with pytest.raises(RunFailed, match="was not trusted; the VMS password is not sent"):
                await establish(ctx, guest, running_guest.hw.ip)
    finally:
        await guest.close()
    assert asked == [presented.fingerprint]
    assert presented.requests == []


async def test_a_resume_trusts_what_the_user_confirmed_in_this_attempt_even_headless(tmp_path, running_guest,
                                                                                      presented):
    running_guest.lab.exec(running_guest.vmid, f"rm -f {sh(CERT_PATH)}")
    guest = await _ssh(running_guest)

    async def yes(fingerprint: str) -> bool:
        return True

    try:
        ctx = _context(tmp_path, running_guest, presented.address)
        journal = Journal(ctx.run)
        ctx.bus.subscribe(journal)
        ctx.services[CONFIRM_VMS_CERTIFICATE] = yes
        await establish(ctx, guest, running_guest.hw.ip)
        resumed = _context(tmp_path / "resumed", running_guest, presented.address)
        resumed.run = ctx.run  # the same run, resumed headless (nobody to ask)
        resumed.bus.subscribe(journal)
        trust = await establish(resumed, guest, running_guest.hw.ip)
        assert (trust.fingerprint, trust.source) == (presented.fingerprint, "confirmed by the user")
        resumed.emit(SnapshotRolledBack(vmid=100, name="pre-install"))  # a new VMS after this
        with pytest.raises(RunFailed, match="which nothing vouches for"):
            await establish(resumed, guest, running_guest.hw.ip)
        journal.close()
    finally:
        await guest.close()


async def test_a_file_that_holds_no_certificate_is_no_certificate(tmp_path, running_guest, presented):
    done = running_guest.lab.exec(running_guest.vmid, f"mkdir -p /vast/vman/vms/ssl && printf 'not a cert\\n' > "
                                                      f"{sh(CERT_PATH)}")
    assert done.returncode == 0
    guest = await _ssh(running_guest)
    try:
        with pytest.raises(RunFailed) as refused:  # headless: nobody to ask
            await establish(_context(tmp_path, running_guest, presented.address), guest, running_guest.hw.ip)
    finally:
        running_guest.lab.exec(running_guest.vmid, f"rm -f {sh(CERT_PATH)}")
        await guest.close()
    assert f"which nothing vouches for ({CERT_PATH} holds no PEM certificate)" in str(refused.value)
    assert f"vast.fingerprint: {presented.fingerprint}" in (refused.value.hint or "")


@pytest.mark.parametrize(("key", "expected"), [("y", True), ("n", False)])
async def test_the_wizard_shows_the_vms_certificate_and_waits_for_the_answer(key, expected):
    app = make_app()
    fingerprint = ":".join(f"{i * 11 % 256:02X}" for i in range(32))
    async with app.run_test(size=(100, 30)) as pilot:
        question = app.run_worker(app.ask_vms_certificate("192.168.30.109", fingerprint, CERT_PATH))
        for _ in range(50):
            if type(app.screen).__name__ == "FingerprintDialog":
                break
            await pilot.pause(0.01)
        dialog = app.screen
        assert type(dialog).__name__ == "FingerprintDialog"
        assert dialog.fingerprint == fingerprint and dialog.url == "https://192.168.30.109"
        assert CERT_PATH in dialog.hint and "vast.fingerprint" in dialog.hint
        await pilot.press(key)
        await question.wait()
        assert question.result is expected
