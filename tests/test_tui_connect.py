"""The Connect screen: the certificate is trusted before any token is sent, failures are one clear
line, a real host's fingerprint is pinned in the answers, and Next waits for a good test."""

from __future__ import annotations

from textual.widgets import Input

from backend.errors import BadInput
from tests.tui_helpers import FINGERPRINT, UNREACHABLE, Opener, connect, make_app, posted, wait_for_screen
from tui.messages import CertificateRejected, ConnectionFailed, ConnectionTested
from tui.wizardstate import WizardState


async def test_lab_connection_is_tested_trusted_and_opens_next():
    opener = Opener()
    app = make_app(opener=opener)
    seen = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        assert app.screen.next_enabled is False
        await pilot.press("ctrl+n")  # Next before a test does nothing
        assert type(app.screen).__name__ == "ConnectScreen"
        await connect(pilot, app)
        tested = posted(seen, ConnectionTested)
        assert len(tested) == 1 and tested[0].pve_version == "9.1.3" and tested[0].fingerprint == FINGERPRINT
        assert app.screen.next_enabled is True
        assert "9.1.3" in str(app.screen.query_one("#result").render())
        assert opener.asked[0].proxmox.url == "lab"
        assert opener.probes[0].closed
        assert app.state.node is not None and app.state.node.node == "pve"
        assert app.state.answers.proxmox.fingerprint is None  # the lab pins its own: nothing to save
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert type(app.screen).__name__ == "HostScreen"


async def test_rejected_certificate_sends_no_token():
    opener = Opener()
    app = make_app(opener=opener)
    seen = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await pilot.press("ctrl+t")
        await wait_for_screen(pilot, app, "FingerprintDialog")
        await pilot.press("n")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert posted(seen, CertificateRejected)
        probe = opener.probes[0]
        assert probe.inventory_read is False and probe.closed
        assert app.screen.next_enabled is False
        assert "not trusted" in app.screen.status


async def test_unreachable_host_is_one_clear_line():
    app = make_app(opener=Opener(error=UNREACHABLE))
    seen = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await pilot.press("ctrl+t")
        await app.workers.wait_for_complete()
        await pilot.pause()
        failed = posted(seen, ConnectionFailed)
        assert failed and failed[0].error == "cannot reach https://192.0.2.10:8006: connection refused"
        assert app.screen.status == failed[0].error and "\n" not in app.screen.status
        assert app.screen.status_is_error and app.screen.next_enabled is False


async def test_os_errors_become_a_sentence_without_traceback():
    app = make_app(opener=Opener(error=ConnectionRefusedError(111, "Connection refused")))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+t")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen.status.startswith("connection to")
        assert "refused" in app.screen.status and "Traceback" not in app.screen.status


async def _fill_host_form(pilot, app, url: str, token_id: str, secret: str) -> None:
    await pilot.click("#scheme-https")
    await pilot.pause()
    app.screen.query_one("#url", Input).value = url
    app.screen.query_one("#token-id", Input).value = token_id
    app.screen.query_one("#token-secret", Input).value = secret
    await pilot.pause()


async def test_a_secret_value_is_refused_a_reference_is_taken():
    opener = Opener(pin=True)
    app = make_app(opener=opener)
    async with app.run_test(size=(80, 24)) as pilot:
        await _fill_host_form(pilot, app, "https://pve.example:8006", "root@pam!vlb", "s3cr3t-token-value")
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert "reference" in app.screen.status and app.screen.status_is_error
        assert "s3cr3t-token-value" not in app.screen.status
        assert not opener.asked  # nothing left the form
        app.screen.query_one("#token-secret", Input).value = "env:PVE_TOKEN"
        await connect(pilot, app)
        assert app.screen.next_enabled
        answers = app.state.answers
        assert answers.proxmox.url == "https://pve.example:8006"
        assert str(answers.proxmox.token_secret) == "env:PVE_TOKEN"
        assert answers.proxmox.fingerprint == FINGERPRINT  # fetched, trusted, pinned


async def test_bad_url_names_the_field():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _fill_host_form(pilot, app, "pve.example", "root@pam!vlb", "env:PVE_TOKEN")
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert app.screen.status.startswith("proxmox.url:")


async def test_changing_the_target_after_a_test_asks_for_a_new_one():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await connect(pilot, app)
        assert app.screen.next_enabled
        await _fill_host_form(pilot, app, "https://other.example:8006", "root@pam!vlb", "env:PVE_TOKEN")
        assert app.screen.next_enabled is False
        assert "test the connection again" in app.screen.status


async def test_opener_bad_input_shows_its_message():
    app = make_app(state=WizardState(), opener=Opener(error=BadInput(
        "proxmox.token_secret: environment variable PVE_TOKEN is not set", hint="export PVE_TOKEN=...")))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+t")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen.status == "proxmox.token_secret: environment variable PVE_TOKEN is not set"


def test_describe_error_is_one_line_and_never_shows_a_secret():
    from backend.errors import TargetUnreachable
    from backend.run.service import describe_error
    from backend.secrets import Secret

    secret = Secret("tok-9c1e-known-secret")
    error = TargetUnreachable(f"401 for token {secret.reveal()}", hint="check the token")
    line = describe_error(error, "https://pve.example:8006")
    assert line == "401 for token ***"
    assert describe_error(TimeoutError(), "https://pve.example:8006").startswith("no answer from https://pve")
    assert describe_error(RuntimeError("boom\nsecond line")) == "connection test failed: RuntimeError: boom"
