"""Scrubbing known secret values out of any text on its way to a file, a log line or the screen.

A secret rarely shows up only as itself. Libraries put it into their exception text escaped: as a
Python repr (`b'PVEAPIToken=...\\nX'` from requests' "Invalid header value"), JSON, URL encoding,
shell quoting, hex or base64 (a Basic auth header), sometimes escaped twice (the repr of a message
holding a repr). So every registered value is expanded once into all of those forms (`disguises`),
and `redact` replaces any of them with `***` in one pass of a single compiled pattern. A value that
spans lines (an SSH key) is also registered line by line, so a message that kept only its first
line still loses it.
"""

from __future__ import annotations

import base64
import html
import json
import re
import shlex
import threading
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_LENGTH = 4  # a shorter value cannot be scrubbed without mangling ordinary text
_MIN_BASE64 = 8  # the part of a base64 text made of the value alone, at any alignment
_LINE_BREAKS = re.compile(r"[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")

def _repr_forms(value: str) -> set[str]:
    """The value inside a Python str repr: with `'` escaped (a repr in single quotes) or not."""
    return {repr(value + '"')[1:-2], repr(value + "'")[1:-2]}


def _bytes_repr_forms(data: bytes) -> set[str]:
    return {repr(data + b'"')[2:-2], repr(data + b"'")[2:-2]}


def _json_forms(value: str) -> set[str]:
    forms = {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    return forms | {form.replace("/", "\\/") for form in forms}  # encoders that escape '/'


def _escapes(value: str) -> set[str]:
    """The escaping that nests: a repr, a JSON string, unicode_escape."""
    return _repr_forms(value) | _json_forms(value) | {value.encode("unicode_escape").decode("ascii")}


def _url_forms(value: str) -> set[str]:
    forms = {quote(value, safe=""), quote(value), quote_plus(value), quote_plus(value, safe="")}
    lower = {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), form) for form in forms}
    return forms | lower


def _base64_cores(data: bytes) -> set[str]:
    """What base64 shows of `data` wherever it sits in a longer text: for each of the 3 alignments,
    the characters made of `data` alone (not of its neighbours)."""
    cores = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for shift in range(3):
            text = encode(b"\0" * shift + data).decode("ascii")
            core = text[(8 * shift + 5) // 6:8 * (shift + len(data)) // 6]  # 6-bit digits of `data` only
            if len(core) >= _MIN_BASE64:
                cores.add(core)
    return cores


def disguises(value: str) -> set[str]:
    """Every form in which `value` may appear in a text: itself, repr'd (str and UTF-8 bytes),
    JSON, unicode_escape, URL-encoded, shell-quoted, HTML-escaped, as Latin-1 mojibake, hex,
    base64; the escapes once more over each of those; and each line of a value spanning lines."""
    data = value.encode("utf-8", "surrogatepass")
    first = {value, shlex.quote(value), html.escape(value), data.hex(), data.hex().upper()}
    first |= _escapes(value) | _bytes_repr_forms(data) | _url_forms(value) | _base64_cores(data)
    first.add(data.decode("latin-1"))
    forms = set(first)
    for form in first:
        if form != value:
            forms |= _escapes(form)
    for line in _LINE_BREAKS.split(value):
        if line != value and len(line) >= MIN_LENGTH:
            forms |= disguises(line)
    return {form for form in forms if len(form) >= MIN_LENGTH}


class Redactor:
    """A set of secret values and the one pattern that finds any of their disguises."""

    def __init__(self) -> None:
        self._forms: dict[str, set[str]] = {}
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        """Remember `value`; values shorter than MIN_LENGTH are not registered (the answers refuse
        such secrets at load)."""
        if not value or len(value) < MIN_LENGTH:
            return
        with self._lock:
            if value in self._forms:
                return
            self._forms[value] = disguises(value)
            forms = set().union(*self._forms.values())
            # Longest first: at one position the longest disguise wins (a form may start another).
            alternatives = sorted(forms, key=lambda form: (-len(form), form))
            self._pattern = re.compile("|".join(re.escape(form) for form in alternatives))

    def redact(self, text: str) -> str:
        """`text` with every known secret, in any of its disguises, replaced by `***`."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def redact_data(self, data: object) -> object:
        """`redact` applied to every string inside dicts and lists, leaving numbers and keys'
        structure intact (a secret made of digits must never corrupt a timestamp)."""
        if isinstance(data, str):
            return self.redact(data)
        if isinstance(data, dict):
            return {key: self.redact_data(value) for key, value in data.items()}
        if isinstance(data, list | tuple):
            return [self.redact_data(value) for value in data]
        return data


_process = Redactor()  # the secrets this process has resolved (and the lab's own)


def register_secret(value: str) -> None:
    """Remember a secret value so that `redact` hides it, in any of its disguises, wherever it
    would be shown or written."""
    _process.register(value)


def redact(text: str) -> str:
    """`text` with every secret this process knows, in any of its disguises, replaced by `***`."""
    return _process.redact(text)


def redact_data(data: object) -> object:
    """`redact` applied to every string inside dicts and lists (numbers and keys left intact)."""
    return _process.redact_data(data)
