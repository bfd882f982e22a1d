"""Helpers for the security tests: run `vast-loopback` as a user would (a subprocess), find a secret
in any of its usual disguises, and end the lab guests a run left behind."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from backend.lab.guest.support import guest_unavailable_reason

REPO = Path(__file__).resolve().parent.parent


def require_lab_guest() -> None:
    reason = guest_unavailable_reason()
    if reason:
        pytest.skip(reason)


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240.0) -> subprocess.CompletedProcess:
    """`vast-loopback ARGS` in a child process (text out and err)."""
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=REPO, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def _b64_cores(data: bytes) -> Iterator[bytes]:
    """What base64 shows of `data` wherever it sits in a longer text (each of the 3 alignments,
    without the characters that depend on the neighbours)."""
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for shift in range(3):
            text = encode(b"\0" * shift + data)
            start = (shift * 8 + 5) // 6  # the first character made of the secret alone
            core = text[start:-4]
            if len(core) >= 8:
                yield core


def disguises(secret: str) -> dict[str, bytes]:
    """The secret as it could show up in a file or an output: itself, JSON- and shell-quoted,
    URL-encoded, hex and base64 (any alignment)."""
    raw = secret.encode()
    found = {
        "raw": raw,
        "json": json.dumps(secret)[1:-1].encode(),
        "shell": shlex.quote(secret).encode(),
        "url": quote(secret, safe="").encode(),
        "url+": quote_plus(secret).encode(),
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
    }
    for index, core in enumerate(_b64_cores(raw)):
        found[f"base64-{index}"] = core
    return found


def find_secrets(data: bytes, secrets: dict[str, str]) -> list[str]:
    """'name as disguise' for every secret found in `data`."""
    hits = []
    for name, secret in secrets.items():
        for how, needle in disguises(secret).items():
            if needle in data:
                hits.append(f"{name} as {how}")
    return hits


def scan_tree(root: Path, secrets: dict[str, str]) -> dict[str, list[str]]:
    """Every regular file under `root` (symlinks not followed) -> the secrets found in it."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        hits = find_secrets(path.read_bytes(), secrets)
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


class ProcessWatch:
    """Every command line on this machine (/proc/*/cmdline, which any user may read: a lab guest's
    processes are this machine's), read every few milliseconds while it runs: what it saw."""

    def __init__(self, every_s: float = 0.01) -> None:
        self.every_s = every_s
        self.seen: set[bytes] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="process-watch", daemon=True)

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    with contextlib.suppress(OSError):
                        with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                            line = handle.read().replace(b"\0", b" ").strip()
                        if line:
                            self.seen.add(line)
            self._stop.wait(self.every_s)

    def holding(self, *needles: bytes) -> list[bytes]:
        return sorted(line for line in self.seen if all(needle in line for needle in needles))


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def stop_lab_guests(run_dir: Path, wait_s: float = 10.0) -> None:
    """End the guests of a run's lab: delete the run directory (a guest whose state is gone stops
    itself) and make sure each guest's process tree is gone, killing its holder by pid if not."""
    holders = []
    for state in (run_dir / "lab" / "guests").glob("*/guest.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            holder = json.loads(state.read_text()).get("holder") or {}
            if holder.get("pid"):
                holders.append((int(holder["pid"]), str(holder.get("start_time"))))
    subprocess.run(["rm", "-rf", "--", str(run_dir)], check=False)
    deadline = time.monotonic() + wait_s
    for pid, started in holders:
        while _start_time(pid) == started and time.monotonic() < deadline:
            time.sleep(0.1)
        if _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
