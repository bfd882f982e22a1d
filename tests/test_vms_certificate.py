"""The VMS client checks the VMS's certificate (issue 12, item 3): it used to check none (vastpy
without `cert_file` is CERT_NONE), so the VMS password went to any server answering on the guest's
address. Now the client accepts exactly the pinned certificate (or one a given CA signed for the
right name), refuses anything else before the credentials are sent, and never retries that; and
there is no way to make it check nothing. Against the lab's VMS (its certificate made in the guest
at the bootstrap) and against an impostor on the VMS's address, over real sockets."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import vastpy
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from backend.clients.vms import VmsClient
from backend.clients.vmstrust import VmsTrust, first_certificate
from backend.clock import Clock
from backend.errors import BadInput, RunFailed
from backend.lab.facts import VMS_CERT_PATH
from backend.lab.vms.server import VmsServer
from backend.model import answers as answers_mod
from backend.secrets import Secret
from backend.target import certificate_fingerprint
from tests.vast_lab_helpers import make_guest

SPEED = 600.0
PASSWORD = "vms-pw-sent-only-to-the-vms"


@pytest.fixture(scope="module")
def online(tmp_path_factory):
    guest = make_guest(tmp_path_factory.mktemp("guest"))
    assert guest.bootstrap().returncode == 0 and guest.create().returncode == 0
    return guest


def _pem(path: Path) -> str:
    return path.read_text()


def guest_trust(root: Path) -> VmsTrust:
    return VmsTrust.pinned(first_certificate(_pem(root / VMS_CERT_PATH.lstrip("/"))), "the guest's own (test)")


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def issue(directory: Path, common: str, *, sans: list[x509.GeneralName], ca: tuple | None = None) -> tuple:
    """(cert path, key path, (cert, key)) of a certificate, self-signed or signed by `ca` (cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_cert, issuer_key = ca if ca else (None, key)
    builder = (x509.CertificateBuilder().subject_name(_name(common))
               .issuer_name(issuer_cert.subject if issuer_cert else _name(common)).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=30)))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if ca is None and not sans:  # a CA
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    cert = builder.sign(issuer_key, hashes.SHA256())
    cert_path, key_path = directory / f"{common}.crt", directory / f"{common}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, (cert, key)


class Impostor:
    """A TLS server on its own certificate that answers like a VMS and records every request it reads."""

    def __init__(self, cert: Path, key: Path) -> None:
        seen = self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
                body = b"[]"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.address = self.httpd.server_address
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> Impostor:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _client(address: tuple[str, int], trust: VmsTrust, **options) -> VmsClient:
    return VmsClient(address, "admin", Secret(PASSWORD), trust=trust, clock=Clock.scaled(SPEED), give_up_s=30,
                     **options)


async def test_the_password_goes_to_the_pinned_vms_only(tmp_path, online):
    clock = Clock.scaled(SPEED)
    server = VmsServer(tmp_path / "lab", clock, online.root, password=PASSWORD).start()
    try:
        assert server.wait_listening(True)
        trust = guest_trust(online.root)
        assert trust.fingerprint == server.fingerprint  # the VMS serves the certificate it made in the guest
        assert (await _client(server.address, trust).cluster())["state"] == "ONLINE"
    finally:
        server.stop()
    cert, key, _ = issue(tmp_path / "impostor", "192.168.30.109", sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    with Impostor(cert, key) as impostor:  # something else answers on the VMS's address
        client = _client(impostor.address, trust)
        with pytest.raises(RunFailed) as refused:
            await client.cluster()
    message = str(refused.value)
    presented = certificate_fingerprint(ssl.PEM_cert_to_DER_cert(cert.read_text()))
    assert f"presented certificate {presented}, not the trusted one (pinned {trust.fingerprint}" in message
    assert "the VMS credentials were not sent" in message and PASSWORD not in message
    assert impostor.requests == []  # refused in the handshake: no request, no Authorization header
    assert client.errors == 0  # not retried as if the VMS were restarting


async def test_a_ca_signed_vms_is_checked_against_the_ca_and_its_name(tmp_path, online):
    ca_cert, _, ca = issue(tmp_path / "ca", "Lab CA", sans=[])
    leaf, leaf_key, _ = issue(tmp_path / "leaf", "vms.example", sans=[x509.DNSName("vms.example")], ca=ca)
    other_ca, _, _ = issue(tmp_path / "other-ca", "Other CA", sans=[])
    with Impostor(leaf, leaf_key) as vms:
        good = VmsTrust(source="the CA (test)", ca_file=str(ca_cert), server_name="vms.example")
        assert await _client(vms.address, good).list("clusters") == []
        assert vms.requests[-1]["authorization"]  # the credentials went to the verified server
        seen = len(vms.requests)
        for trust in (VmsTrust(source="the CA (test)", ca_file=str(ca_cert), server_name="other.example"),
                      VmsTrust(source="another CA (test)", ca_file=str(other_ca), server_name="vms.example"),
                      VmsTrust(source="the CA, the address as name (test)", ca_file=str(ca_cert))):
            client = _client(vms.address, trust)
            with pytest.raises(RunFailed, match="the VMS credentials were not sent"):
                await client.cluster()
            assert client.errors == 0
        assert len(vms.requests) == seen  # none of them sent a request


def test_there_is_no_vms_connection_that_checks_nothing(tmp_path):
    with pytest.raises(TypeError):
        VmsClient(("127.0.0.1", 1), "admin", Secret(PASSWORD))  # a trust is not optional  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="pinned certificate or a CA"):
        VmsTrust(source="nothing")
    # vastpy through backend.clients.vms's urllib3, outside a client (no trust in this thread): no PoolManager
    with pytest.raises(RuntimeError, match="checks no certificate"):
        vastpy.VASTClient(user="admin", password=PASSWORD, address="127.0.0.1:1").clusters.get()
    cert, _, _ = issue(tmp_path, "pinned", sans=[x509.DNSName("pinned")])
    trust = VmsTrust.pinned(ssl.PEM_cert_to_DER_cert(cert.read_text()), "test")
    options = trust.pool_options()
    assert options["cert_reqs"] == "CERT_REQUIRED" and options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert options["assert_fingerprint"] == trust.fingerprint.replace(":", "").lower()


# --- the answers ------------------------------------------------------------------------------------

PIN = ":".join(["AB"] * 32)


@pytest.mark.parametrize(("vast", "message"), [
    ("{fingerprint: 'AB:CD'}", "vast.fingerprint: must be a SHA-256 fingerprint"),
    (f"{{fingerprint: '{PIN}', ca_file: /etc/vms-ca.pem}}", "give fingerprint (a pin) or ca_file (a CA), not both"),
    ("{server_name: vms.example}", "give ca_file too"),
    ("{ca_file: relative/ca.pem}", "vast.ca_file: must be an absolute path"),
    ("{cert_path: vms.crt}", "vast.cert_path: must be an absolute path on the guest"),
    ("{cert_path: /vast/../etc/shadow}", "vast.cert_path: must be an absolute path on the guest"),
])
def test_vms_trust_answers_are_checked_at_load(vast, message):
    with pytest.raises(BadInput) as refused:
        answers_mod.parse(f"proxmox: {{url: lab}}\nvast: {vast}\n")
    assert message in str(refused.value) and refused.value.exit_code == 2


def test_a_ca_file_that_is_not_there_is_bad_input_before_the_run(tmp_path):
    answers = answers_mod.parse(f"proxmox: {{url: lab}}\nvast: {{ca_file: {tmp_path / 'missing.pem'}}}\n")
    with pytest.raises(BadInput, match="vast.ca_file: .*missing.pem is not a file here"):
        answers_mod.check_secrets(answers)
    pinned = answers_mod.parse(f"proxmox: {{url: lab}}\nvast: {{fingerprint: '{PIN.lower()}'}}\n")
    assert pinned.vast.fingerprint == PIN and pinned.vast.cert_path == answers_mod.VMS_CERT_PATH
