"""The run directory: a journal of events that survives a crash, and what resume reads back.

Layout (mode 0700; every file 0600):
    run.json           id, creation time, version, status ("running" | "finished")
    answers.yaml       the answers used (secrets as references only), mode 0600
    events.jsonl       every event except samples, one JSON object per line
    samples.jsonl      SampleTaken events (the monitor's 1 Hz samples)
    install.log        the install log as received (ANSI and spinners stripped)
    lab/               the lab's world and request logs, when the run is on the lab
    report.md          written by `vast-loopback report`

Each line is written and flushed before the engine goes on, so a SIGKILL loses nothing that was
emitted; step boundaries are also fsync'd. A torn last line (killed mid-write) is skipped on read.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import secrets as _random
import time
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from backend.errors import BadInput
from backend.events import Event, InstallLogAppended, RunFinished, RunStarted, SampleTaken, StepFinished
from backend.secrets import redact, redact_data

EVENTS = "events.jsonl"
SAMPLES = "samples.jsonl"
INSTALL_LOG = "install.log"
RUN_META = "run.json"
ANSWERS = "answers.yaml"


def default_runs_root() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "vast-loopback" / "runs"


def new_run_id(vm_name: str = "run") -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{vm_name}-{_random.token_hex(2)}"


def _mkdir_private(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, readable by its owner only (0600), like every file of
    the run directory."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)  # an older .tmp left by a kill keeps its mode through O_TRUNC
    os.replace(tmp, path)


@dataclass
class RunDir:
    path: Path

    @classmethod
    def create(cls, path: str | os.PathLike[str] | None, vm_name: str = "run") -> RunDir:
        run_id = new_run_id(vm_name)
        target = Path(path) if path else default_runs_root() / run_id
        if target.exists() and any(target.iterdir()):
            if (target / RUN_META).exists():
                raise BadInput(
                    f"{target} already holds a run",
                    hint=f"resume it with --resume {target}, or pick another --run-dir",
                )
            raise BadInput(f"{target} is not empty; pick an empty or new --run-dir")
        _mkdir_private(target)
        run = cls(target)
        run.write_meta({"id": run_id, "created": time.time(), "status": "running"})
        return run

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDir:
        target = Path(path)
        if not (target / RUN_META).exists() and not (target / EVENTS).exists():
            raise BadInput(f"{target} is not a vast-loopback run directory (no {RUN_META} or {EVENTS})")
        return cls(target)

    # --- metadata ---

    @property
    def meta_path(self) -> Path:
        return self.path / RUN_META

    def read_meta(self) -> dict:
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def write_meta(self, meta: dict) -> None:
        write_private(self.meta_path, json.dumps(meta, indent=2))

    def update_meta(self, **changes: object) -> None:
        meta = self.read_meta()
        meta.update(changes)
        self.write_meta(meta)

    @property
    def run_id(self) -> str:
        return str(self.read_meta().get("id", self.path.name))

    @property
    def lab_dir(self) -> Path:
        path = self.path / "lab"
        _mkdir_private(path)
        return path

    # --- reading ---

    def events(self, include_samples: bool = False) -> Iterator[Event]:
        """Events in the order written; samples merged in by time when asked for."""
        yield from read_events(self.path / EVENTS)
        if include_samples:
            yield from read_events(self.path / SAMPLES)

    def samples(self) -> Iterator[SampleTaken]:
        for event in read_events(self.path / SAMPLES):
            if isinstance(event, SampleTaken):
                yield event

    def finished_steps(self) -> dict[str, dict]:
        """Step id -> result of every step that finished successfully."""
        done: dict[str, dict] = {}
        for event in self.events():
            if isinstance(event, StepFinished) and event.ok:
                done[event.step] = event.result
        return done

    def is_finished(self) -> bool:
        return any(isinstance(e, RunFinished) for e in self.events())

    def started(self) -> RunStarted | None:
        return next((e for e in self.events() if isinstance(e, RunStarted)), None)


def read_events(path: Path) -> Iterator[Event]:
    """The events of a journal file. A line that is not an event (torn by a kill mid-write, or
    damaged: not JSON, a field missing, a time that is not a finite number) is skipped."""
    try:
        handle = path.open("r", encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                data = json.loads(line)
                event = Event.from_dict(data) if isinstance(data, dict) else None
            except (ValueError, TypeError):
                continue
            if event is not None and _well_typed(event) and math.isfinite(event.ts):
                yield event


@functools.cache
def _fields(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _has_type(value: object, hint: Any) -> bool:
    """Whether a JSON value fits a field's annotation (str, int, float, bool, dict, list, X | None)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, arg) for arg in typing.get_args(hint))
    if origin is typing.ClassVar:
        return True
    if hint is type(None):
        return value is None
    hint = origin or hint
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return not isinstance(hint, type) or isinstance(value, hint)


def _well_typed(event: Event) -> bool:
    """Every field of an event read back has its declared type (a damaged journal is not trusted)."""
    return all(_has_type(getattr(event, name), hint) for name, hint in _fields(type(event)).items()
               if hasattr(event, name))


class Journal:
    """A bus subscriber that appends every event to the run directory, flushed line by line."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self._events = self._open(EVENTS)
        self._samples = self._open(SAMPLES)
        self._install_log = self._open(INSTALL_LOG)

    def _open(self, name: str) -> IO[str]:
        path = self.run.path / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        handle = os.fdopen(fd, "a", encoding="utf-8")
        # Repair a torn last line so the next event starts on a line of its own.
        if path.stat().st_size:
            with path.open("rb") as reader:
                reader.seek(-1, os.SEEK_END)
                if reader.read(1) != b"\n":
                    handle.write("\n")
        return handle

    def __call__(self, event: Event) -> None:
        line = json.dumps(redact_data(event.to_dict()), separators=(",", ":"), default=str)
        target = self._samples if isinstance(event, SampleTaken) else self._events
        target.write(line + "\n")
        target.flush()
        if isinstance(event, InstallLogAppended) and event.lines:
            self._install_log.write(redact("\n".join(event.lines)) + "\n")
            self._install_log.flush()
        if isinstance(event, StepFinished | RunFinished):
            os.fsync(target.fileno())
        if isinstance(event, RunFinished):
            self.run.update_meta(status="finished", outcome=event.outcome, exit_code=event.exit_code)

    def close(self) -> None:
        for handle in (self._events, self._samples, self._install_log):
            with contextlib.suppress(OSError):
                handle.close()


# Runs that reached their end; failed, aborted, blocked or stopped (--until) runs can be resumed.
COMPLETE_OUTCOMES = frozenset({"done", "online"})


def unfinished_runs(root: Path | None = None) -> list[RunDir]:
    """Runs under the default root that can be resumed (interrupted, failed, stopped), newest first."""
    base = root or default_runs_root()
    if not base.is_dir():
        return []
    runs = []
    for child in sorted(base.iterdir(), reverse=True):
        meta = child / RUN_META
        if meta.exists():
            run = RunDir(child)
            if run.read_meta().get("outcome") not in COMPLETE_OUTCOMES:
                runs.append(run)
    return runs
