"""Property: for random secrets, no form of them reaches stdout, stderr, the run directory or the
report. Driven through real CLI runs against the lab (hypothesis): `check` with the secret as the
Proxmox token, and a short `--auto --until guest_connect` (real token auth, a real SSH login to the
lab guest with the secret as its password) followed by `report --json`.

The secrets are drawn from any printable and non-printable characters, of any length, rich in the
characters that escape differently in repr, JSON, URL and shell encodings. Those the tool refuses
(a control character, a line break, too short, a token Proxmox cannot carry) must end in exit 2
before a run directory exists; the others are used for real. Either way, none of the secret's
disguises (raw, JSON, repr of str and bytes, shell, URL, hex, base64) may be found anywhere. A
secret that the tool's ordinary output holds anyway (a run with other secrets shows it too) says
nothing and is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from backend.redaction import MIN_LENGTH
from tests.security_support import REPO, find_secrets, require_lab_guest, stop_lab_guests

pytestmark = [pytest.mark.slow, pytest.mark.lab]

ANSWERS = """\
proxmox: {{url: lab, token_id: "root@pam!vlb", token_secret: "{token}"}}
vm: {{name: vast-lb, vcpus: 12, memory_gib: 120, disk_gib: 1000}}
guest: {{password: "{guest}"}}
"""
# Characters that escape differently in repr / JSON / URL / shell, control characters, non-ASCII.
TRICKY = list("\"'\\/%+=&;:,?#$`!*~ \t\n\r\x07\x1b\x7f\x85\u2028\u00e9\u00ff\u20ac\U0001f511") + list("aZ09-_.")
any_secret = st.one_of(
    st.text(alphabet=st.sampled_from(TRICKY), min_size=1, max_size=24),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=24),
)
printable = st.text(alphabet=st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S", "Zs"]),
                    min_size=8, max_size=32)
token_chars = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e, exclude_characters="=;%"),
                      min_size=8, max_size=40)
tokens = st.one_of(token_chars, token_chars, any_secret)  # mostly tokens Proxmox can take, so they are used
passwords = st.one_of(printable, printable, any_secret)
sources = st.sampled_from(["env", "file"])
SLOW = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def _cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore", "TMPDIR": str(cwd / "tmp"), **env}
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=cwd, env=full, capture_output=True,
                          timeout=240)


class Work:
    """One example's directory: answers, the secrets (in the environment or in 0600 files, one line
    each), a TMPDIR for crash files, the run directory."""

    def __init__(self, root: Path, token: str, password: str, source: str = "env") -> None:
        self.root = root
        (root / "tmp").mkdir()
        self.env: dict[str, str] = {}
        refs = {}
        for name, value in (("token", token), ("guest", password)):
            if source == "env":
                self.env[f"VLB_PROP_{name.upper()}"] = value
                refs[name] = f"env:VLB_PROP_{name.upper()}"
            else:
                path = root / f"{name}.secret"
                path.write_bytes(value.encode() + b"\n")
                path.chmod(0o600)
                refs[name] = f"file:{path}"
        self.secret_files = {root / "token.secret", root / "guest.secret"}
        self.answers = root / "answers.yaml"
        self.answers.write_text(ANSWERS.format(**refs))
        self.run_dir = root / "run"
        self.outputs: dict[str, bytes] = {}

    def cli(self, name: str, *args: str) -> subprocess.CompletedProcess:
        result = _cli(*args, cwd=self.root, env=self.env)
        self.outputs[f"{name} stdout"] = result.stdout
        self.outputs[f"{name} stderr"] = result.stderr
        return result

    def files(self) -> list[Path]:
        """Every file the tool wrote (not the answers and secret files this test wrote)."""
        return [p for p in sorted(self.root.rglob("*")) if p.is_file() and not p.is_symlink()
                and p != self.answers and p not in self.secret_files]

    def corpus(self) -> bytes:
        return b"\n".join([*self.outputs.values(), *(p.read_bytes() for p in self.files())])


class Baseline(bytes):
    """What an ordinary run shows (short repr: hypothesis prints its arguments)."""

    def __repr__(self) -> str:
        return f"Baseline({len(self)} bytes)"


def _effective(value: str, source: str) -> str:
    """The secret the tool reads: a file's trailing line breaks are not part of it."""
    return value.rstrip("\r\n") if source == "file" else value


def _unusable(value: str) -> bool:
    """What the tool refuses at load: too short, control characters or line breaks."""
    return len(value) < MIN_LENGTH or any(not c.isprintable() and c != " " for c in value)


def _token_unusable(value: str) -> bool:
    return _unusable(value) or not all("!" <= c <= "~" for c in value) or any(c in "=;%" for c in value)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Baseline:
    """What an ordinary run shows, with unremarkable secrets: a random secret that this holds too
    is ordinary text and proves nothing."""
    require_lab_guest()
    work = Work(tmp_path_factory.mktemp("baseline"), "baseline-token-7f3a9c", "baseline-password-2b8e")
    try:
        _short_run(work)
        work.cli("check", "check", str(work.answers))
        return Baseline(work.corpus())
    finally:
        stop_lab_guests(work.run_dir)


def _short_run(work: Work) -> subprocess.CompletedProcess:
    result = work.cli("run", "--auto", str(work.answers), "--run-dir", str(work.run_dir), "--until", "guest_connect",
                      "--speed", "600")
    if work.run_dir.exists():
        work.cli("report", "report", str(work.run_dir), "--json")
    return result


def _leaks(work: Work, secrets: dict[str, str]) -> dict[str, list[str]]:
    """Where any disguise of the secrets shows: an output, a file the tool wrote (crash files too)."""
    found = {name: hits for name, data in work.outputs.items() if (hits := find_secrets(data, secrets))}
    found |= {str(p): hits for p in work.files() if (hits := find_secrets(p.read_bytes(), secrets))}
    corpus = work.corpus()
    for name, secret in secrets.items():  # the repr forms find_secrets does not know
        data = secret.encode()
        for form in {repr(secret + '"')[1:-2], repr(secret + "'")[1:-2], repr(data + b"'")[2:-2]}:
            if len(form) >= MIN_LENGTH and form.encode() in corpus:
                found.setdefault("anywhere", []).append(f"{name} as repr {form!r}")
    return found


def _telling(secrets: dict[str, str], baseline: bytes) -> dict[str, str]:
    """The secrets whose presence would mean a leak: long enough, and not in ordinary output."""
    return {name: value for name, value in secrets.items()
            if len(value) >= MIN_LENGTH and not find_secrets(baseline, {name: value})}


@settings(max_examples=30, deadline=None, print_blob=True, suppress_health_check=SLOW)
@given(token=tokens, source=sources)
def test_check_never_shows_the_token(baseline, token, source):
    with tempfile.TemporaryDirectory(prefix="vlb-prop-") as root:
        work = Work(Path(root), token, "unused-password-1234", source)
        result = work.cli("check", "check", str(work.answers))
        note(f"exit {result.returncode}: {result.stderr[-400:]!r}")
        if _token_unusable(_effective(token, source)):
            assert result.returncode == 2 and result.stdout == b""
            assert result.stderr.startswith(b"vast-loopback: proxmox.token_secret: ")
        else:
            assert result.returncode == 0, result.stderr
        assert list((work.root / "tmp").iterdir()) == [], "a crash file was written"
        telling = _telling({"token": token, "token as read": _effective(token, source)}, baseline)
        event(f"{source}, {'refused' if result.returncode == 2 else 'used'}, {'checked' if telling else 'ordinary'}")
        assert _leaks(work, telling) == {}


@settings(max_examples=15, deadline=None, print_blob=True, suppress_health_check=SLOW)
@given(token=tokens, password=passwords, source=sources)
def test_a_short_run_and_its_report_never_show_the_token_or_the_guest_password(baseline, token, password, source):
    with tempfile.TemporaryDirectory(prefix="vlb-prop-") as root:
        work = Work(Path(root), token, password, source)
        try:
            result = _short_run(work)
            note(f"exit {result.returncode}: {result.stdout[-600:]!r} {result.stderr[-400:]!r}")
            if _token_unusable(_effective(token, source)) or _unusable(_effective(password, source)):
                assert result.returncode == 2 and not work.run_dir.exists()
            else:
                assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
                events = (work.run_dir / "events.jsonl").read_text()
                assert '"type":"GuestConnected"' in events.replace(" ", "")  # the password really logged in
                assert json.loads(work.outputs["report stdout"])  # and the report was written
            assert list((work.root / "tmp").iterdir()) == [], "a crash file was written"
            telling = _telling({"token": token, "guest.password": password, "token as read": _effective(token, source),
                                "guest.password as read": _effective(password, source)}, baseline)
            event(f"{source}, exit {result.returncode}, {len(telling)} telling")
            assert _leaks(work, telling) == {}
        finally:
            stop_lab_guests(work.run_dir)
