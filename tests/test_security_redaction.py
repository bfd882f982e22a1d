"""The redactor holds for any value: a secret is scrubbed from text whether it shows raw, escaped,
repr'd (str or bytes, once or twice), JSON-, URL-, shell- or HTML-encoded, as hex or base64, or cut
at a line break; and it is scrubbed from the exception text the libraries the tool drives really
produce (requests, proxmoxer, urllib3, vastpy, asyncssh). Properties over random secrets and
random surrounding text (hypothesis), then each library's own exception."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import shlex
import traceback
from urllib.parse import quote, quote_plus

import pytest
import requests
import urllib3
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from backend.redaction import MASK, MIN_LENGTH, Redactor
from tests.security_support import find_secrets

# Characters that escape differently in repr, JSON, URL and shell encodings, and some that do not.
TRICKY = list("\"'\\/%+=&;:,? \t\n\r\x00\x07\x1b\x7f\x85\u2028\u00e9\u00ff\u0100\u20ac\U0001f511") + list("aZ09-_.")
secrets_st = st.one_of(
    st.text(alphabet=st.sampled_from(TRICKY), min_size=MIN_LENGTH, max_size=24),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=MIN_LENGTH, max_size=24),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), min_size=MIN_LENGTH, max_size=40),
)
around = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)


def _inner_reprs(value: str) -> set[str]:
    return {repr(value + '"')[1:-2], repr(value + "'")[1:-2]}


def _encodings(text: str) -> dict[str, str]:
    """`text` as libraries and formats put it into a message."""
    data = text.encode("utf-8", "surrogatepass")
    return {
        "raw": text, "repr": repr(text), "bytes repr": repr(data), "json": json.dumps(text),
        "json utf-8": json.dumps(text, ensure_ascii=False), "url": quote(text, safe=""), "url+": quote_plus(text),
        "shell": shlex.quote(text), "html": html.escape(text), "hex": data.hex(),
        "base64": base64.b64encode(data).decode(), "args tuple": str((repr(data), 1)),
        "repr of json": repr(json.dumps(text)), "json of repr": json.dumps(repr(data)),
    }


def _shows(output: str, secret: str) -> list[str]:
    """How `secret` still shows in `output` (its own disguises, computed here independently)."""
    data = secret.encode("utf-8", "surrogatepass")
    needles = {"raw": secret, "json": json.dumps(secret)[1:-1], "hex": data.hex()}
    for index, form in enumerate(_inner_reprs(secret) | {repr(data + b'"')[2:-2], repr(data + b"'")[2:-2]}):
        needles[f"repr{index}"] = form
    needles["url"] = quote(secret, safe="")
    found = [how for how, needle in needles.items() if len(needle) >= MIN_LENGTH and needle in output]
    return found + find_secrets(output.encode("utf-8", "surrogatepass"), {"secret": secret})


@settings(max_examples=400, deadline=None)
@given(secret=secrets_st, before=around, after=around)
def test_a_secret_in_any_encoding_of_any_text_is_scrubbed(secret, before, after):
    redactor = Redactor()
    redactor.register(secret)
    for how, encoded in _encodings(before + secret + after).items():
        shown = redactor.redact(encoded)
        assert _shows(shown, secret) == [], (how, encoded, shown)


@settings(max_examples=200, deadline=None)
@given(secret=st.text(alphabet=st.sampled_from(TRICKY), min_size=2 * MIN_LENGTH + 1, max_size=30),
       before=around)
def test_a_secret_spanning_lines_is_scrubbed_from_each_line_kept(secret, before):
    lines = secret.splitlines()
    assume(len(lines) > 1)
    redactor = Redactor()
    redactor.register(secret)
    for line in (before + secret).splitlines():
        shown = redactor.redact(line)
        for part in lines:
            if len(part) >= MIN_LENGTH:
                assert part not in shown


@settings(max_examples=300, deadline=None)
@given(secret=secrets_st, text=st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_text_without_the_secret_is_left_alone(secret, text):
    redactor = Redactor()
    redactor.register(secret)
    assume(secret not in text and _shows(text, secret) == [])
    shown = redactor.redact(text)
    assert shown == text or MASK in shown  # changed only where some disguise of it was
    assert redactor.redact(secret.join([text, text])).count(MASK) >= 1


def test_short_values_are_not_registered_and_digits_in_data_stay_numbers():
    redactor = Redactor()
    redactor.register("abc")
    assert redactor.redact("abc abc") == "abc abc"
    redactor.register("1234")
    assert redactor.redact_data({"t": 1234, "s": "at 1234", "l": ["x1234"]}) == {"t": 1234, "s": "at ***",
                                                                                "l": ["x***"]}


# --- the libraries' own exceptions ----------------------------------------------------------------

LIBRARY_SECRETS = ["TOKNL-z9y8\nX", "tok\"'\\quote%2F+/=", "m\u00fcnchen-\u20ac-\U0001f511-key", "a b\tc\x1bd"]


def _everything(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


def _scrubbed(redactor: Redactor, secret: str, exc: BaseException) -> None:
    text = _everything(exc)
    shown = redactor.redact(text)
    assert _shows(shown, secret) == [], shown
    assert "\\n".join(secret.split("\n")) not in shown and secret.split("\n")[0] not in shown


@pytest.fixture
def redactor():
    return Redactor()


@pytest.mark.parametrize("secret", LIBRARY_SECRETS)
def test_requests_and_proxmoxer_header_errors_are_scrubbed(redactor, secret):
    from proxmoxer import ProxmoxAPI

    redactor.register(secret)
    with pytest.raises(Exception) as info:  # noqa: B017 - whatever the library raises
        requests.get("http://127.0.0.1:9/", headers={"Authorization": f"PVEAPIToken=root@pam!vlb={secret}"},
                     timeout=2)
    _scrubbed(redactor, secret, info.value)
    api = ProxmoxAPI("127.0.0.1:9", user="root@pam", token_name="vlb", token_value=secret, verify_ssl=False,
                     timeout=2)
    with pytest.raises(Exception) as info:  # noqa: B017
        api.version.get()
    _scrubbed(redactor, secret, info.value)


@pytest.mark.parametrize("secret", LIBRARY_SECRETS)
def test_urllib3_and_vastpy_errors_are_scrubbed(redactor, secret):
    from vastpy import VASTClient

    redactor.register(secret)
    pool = urllib3.PoolManager(retries=False, timeout=2)
    with pytest.raises(Exception) as info:  # noqa: B017
        pool.request("GET", "http://127.0.0.1:9/", headers={"X-Secret": secret,
                                                            **urllib3.make_headers(basic_auth=f"admin:{secret}")})
    _scrubbed(redactor, secret, info.value)
    with pytest.raises(Exception) as info:  # noqa: B017
        VASTClient(address="127.0.0.1:9", token=secret).clusters.get()
    _scrubbed(redactor, secret, info.value)
    if not secret.isascii():
        return
    auth = urllib3.make_headers(basic_auth=f"admin:{secret}")["authorization"]
    shown = redactor.redact(f"refused header {auth!r} and {auth.encode()!r}")
    assert _shows(shown, secret) == [] and base64.b64encode(f"admin:{secret}".encode()).decode() not in shown


@pytest.mark.parametrize("secret", LIBRARY_SECRETS)
def test_asyncssh_errors_are_scrubbed(redactor, secret):
    import asyncssh

    redactor.register(secret)

    async def connect() -> None:
        await asyncssh.connect("127.0.0.1", 9, username="centos", password=secret, known_hosts=None,
                               connect_timeout=2)

    with pytest.raises(Exception) as info:  # noqa: B017
        asyncio.run(connect())
    _scrubbed(redactor, secret, info.value)
    # and the exception a library builds around a value it could not encode
    try:
        secret.encode("ascii")
    except UnicodeEncodeError as exc:
        _scrubbed(redactor, secret, exc)


def test_an_unexpected_error_a_step_logs_is_one_redacted_line_on_stderr(capsys, monkeypatch):
    """The engine logs a step's unexpected error with its traceback; with no handler Python printed
    that traceback, secret and all, on stderr. The CLI's last-resort handler prints one line."""
    import logging

    from backend.secrets import register_secret
    from tui import cli

    monkeypatch.setattr(logging, "lastResort", logging.lastResort)  # restored after the test
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as outside pytest: no handler at all
    secret = "TOKNL-z9y8\nX-logged"
    register_secret(secret)
    assert cli.main(["schema"]) == 0
    capsys.readouterr()
    try:
        raise ValueError(f"Invalid header value {('PVEAPIToken=root@pam!vlb=' + secret).encode()!r}")
    except ValueError:
        logging.getLogger("backend.run.engine").exception("step failed with an unexpected error")
    err = capsys.readouterr().err
    assert err.startswith("vast-loopback: error: step failed with an unexpected error: ValueError: Invalid header")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert _shows(err, secret) == [] and "TOKNL" not in err
