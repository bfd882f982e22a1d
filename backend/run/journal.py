"""The run directory: a journal of events that survives a crash, and what resume reads back.

Layout (mode 0700; every file 0600):
    run.json           id, creation time, version, status ("running" | "finished" | "stopped"), options
    run.lock           who drives the run now (backend/run/runlock.py)
    answers.yaml       the answers used (secrets as references only), mode 0600
    events.jsonl       every event except samples, one JSON object per line
    samples.jsonl      SampleTaken events (the monitor's 1 Hz samples)
    install.log        the install log as received (ANSI and spinners stripped)
    <provider>/        a target provider's own state (a simulated target's world and request logs),
                       named after its `proxmox.url` (backend/run/service.py `state_dir`)
    report.md          written by `vast-loopback report`

Each line is written and flushed before the engine goes on, so a SIGKILL loses nothing that was
emitted; step boundaries are also fsync'd. A torn last line (killed mid-write) is skipped on read.
A journal that cannot write (a full disk) tells its owner (`on_failure`), which stops the run: a run
that goes on unjournaled could not be resumed. Every file here is written through
backend/run/safefiles.py (no symlink followed, nothing written outside) and read as a regular file, line
by line with limits; the lines skipped are kept in `RunDir.skipped` with the reason.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from backend.errors import BadInput, RunFailed
from backend.events import Event, InstallLogAppended, RunFinished, RunStarted, SampleTaken, StepFinished
from backend.run.safefiles import (
    Skipped,
    json_lines,
    make_private_dir,
    open_append,
    overwrite_in_place,
    parse_json_line,
    read_small,
    write_private,
)
from backend.secrets import redact, redact_data

EVENTS = "events.jsonl"
SAMPLES = "samples.jsonl"
INSTALL_LOG = "install.log"
RUN_META = "run.json"
ANSWERS = "answers.yaml"
MAX_EVENT_DEPTH = 32  # the deepest event written nests about 6 levels (a diagnosis with its evidence)
MAX_META_BYTES = 1024 * 1024


def default_runs_root() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "vast-loopback" / "runs"


def new_run_id(vm_name: str = "run") -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{vm_name}-{_random.token_hex(2)}"


class DamagedMeta(BadInput):
    """run.json is there but is not what vast-loopback wrote (exit 2): resuming without the run's
    id and options would be another run."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path} is damaged ({reason}): the run's id and options are lost",
                         hint="restore run.json from a backup, or start a new run")
        self.reason = reason


def _target_problem(target: Path) -> str | None:
    """Why `target` cannot become a run directory, or None."""
    if target.is_symlink():
        return f"is a symbolic link (to {os.readlink(target)}); a run directory is never reached through one"
    if target.exists() and not target.is_dir():
        return "exists and is not a directory"
    return None


@dataclass
class RunDir:
    path: Path
    skipped: Skipped = field(default_factory=Skipped, repr=False, compare=False)  # lines read and skipped

    @classmethod
    def create(cls, path: str | os.PathLike[str] | None, vm_name: str = "run") -> RunDir:
        run_id = new_run_id(vm_name)
        target = Path(path) if path else default_runs_root() / run_id
        problem = _target_problem(target)
        if problem:
            raise BadInput(f"run directory {target} {problem}", hint="give --run-dir a new or empty directory")
        try:
            if target.exists() and any(target.iterdir()):
                if (target / RUN_META).exists():
                    raise BadInput(
                        f"{target} already holds a run",
                        hint=f"resume it with --resume {target}, or pick another --run-dir",
                    )
                raise BadInput(f"{target} is not empty; pick an empty or new --run-dir")
            make_private_dir(target)
            run = cls(target)
            run.write_meta({"id": run_id, "created": time.time(), "status": "running"})
        except OSError as exc:
            raise BadInput(f"cannot make the run directory {target}: {exc.strerror or exc}",
                           hint="give --run-dir a directory you can write to, on a writable file system") from None
        return run

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDir:
        target = Path(path)
        if target.is_symlink():
            raise BadInput(f"run directory {target} is a symbolic link (to {os.readlink(target)}); a run directory "
                           "is never reached through one", hint="give the directory it points to")
        if not (target / RUN_META).exists() and not (target / EVENTS).exists():
            raise BadInput(f"{target} is not a vast-loopback run directory (no {RUN_META} or {EVENTS})")
        return cls(target)

    # --- metadata ---

    @property
    def meta_path(self) -> Path:
        return self.path / RUN_META

    def read_meta(self, required: bool = False) -> dict:
        """run.json: {} when it is missing (unless `required`); BadInput, with the reason, when it
        is damaged (a run resumed without its id and options would not be the same run)."""
        try:
            data = read_small(self.meta_path, MAX_META_BYTES)
        except FileNotFoundError:
            if required:
                raise BadInput(f"{self.meta_path} is missing: the run's id and options are not known",
                               hint="start a new run; a run directory cannot be resumed without its run.json") from None
            return {}
        except OSError as exc:
            raise BadInput(f"{self.meta_path} cannot be read: {exc.strerror or exc}") from None
        meta, reason = parse_json_line(data, MAX_EVENT_DEPTH)
        if not reason and not isinstance(meta, dict):
            reason = f"a JSON {type(meta).__name__}, not an object"
        if reason:
            raise DamagedMeta(self.meta_path, reason)
        return meta

    def write_meta(self, meta: dict) -> None:
        write_private(self.meta_path, json.dumps(meta, indent=2))

    def update_meta(self, **changes: object) -> None:
        meta = self.read_meta()
        meta.update(changes)
        self.write_meta(meta)

    def mark_stopped(self, reason: str) -> bool:
        """run.json says the run stopped, and why, even on a full disk: the file is rewritten in
        place, in the blocks it has, when a new one cannot be made. False when neither worked."""
        try:
            meta = self.read_meta()
        except BadInput:
            meta = {}
        meta.update(status="stopped", outcome="stopped", exit_code=1, message=reason)
        try:
            self.write_meta(meta)
            return True
        except OSError:
            pass
        short = {**meta, "message": reason.rsplit(": ", 1)[-1]}  # the error alone: "No space left on device"
        for text in (json.dumps(meta, separators=(",", ":")), json.dumps(short, separators=(",", ":"))):
            with contextlib.suppress(OSError, BadInput):
                if overwrite_in_place(self.meta_path, text):
                    return True
        return False

    @property
    def run_id(self) -> str:
        return str(self.read_meta().get("id", self.path.name))

    # --- reading ---

    def events(self, include_samples: bool = False) -> Iterator[Event]:
        """Events in the order written; samples merged in by time when asked for."""
        yield from read_events(self.path / EVENTS, self.skipped)
        if include_samples:
            yield from read_events(self.path / SAMPLES, self.skipped)

    def samples(self) -> Iterator[SampleTaken]:
        for event in read_events(self.path / SAMPLES, self.skipped):
            if isinstance(event, SampleTaken):
                yield event

    def finished_steps(self) -> dict[str, dict]:
        """Step id -> result of every step that finished successfully."""
        done: dict[str, dict] = {}
        for event in self.events():
            if isinstance(event, StepFinished) and event.ok:
                done[event.step] = event.result
        return done

    def started(self) -> RunStarted | None:
        return next((e for e in self.events() if isinstance(e, RunStarted)), None)


def read_events(path: Path, skipped: Skipped | None = None) -> Iterator[Event]:
    """The events of a journal file (a regular file: NotRegular otherwise). A line that is not an
    event (torn by a kill mid-write, or damaged: not JSON, too long, nested too deep, a field
    missing, a time that is not a finite number) is skipped, and said in `skipped`."""
    for number, data, reason in json_lines(path, MAX_EVENT_DEPTH):
        if not reason:
            event, reason = _event(data)
            if event is not None:
                yield event
                continue
        if skipped is not None:
            skipped.add(path.name, number, reason)


def _event(data: object) -> tuple[Event | None, str]:
    try:
        event = Event.from_dict(data) if isinstance(data, dict) else None
    except (ValueError, TypeError):
        event = None
    if event is None or not _well_typed(event) or not math.isfinite(event.ts):
        return None, "not an event (an unknown type, or a field missing or of the wrong type)"
    return event, ""


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


class JournalFailed(RunFailed):
    """The journal could not be written (a full disk, a failing device): the run stops (exit 1)."""


def journal_failure(exc: OSError) -> str:
    """Why the journal stopped, in words."""
    where = f" ({Path(exc.filename).name})" if getattr(exc, "filename", None) else ""
    return f"the run's journal could not be written{where}: {exc.strerror or exc}"


class Journal:
    """A bus subscriber that appends every event to the run directory, flushed line by line.

    When a write fails, the journal stops writing and calls `on_failure` with the error (the
    front ends stop the run there: `RunContext.halt`); without `on_failure` it raises JournalFailed."""

    def __init__(self, run: RunDir, on_failure: Callable[[OSError], None] | None = None) -> None:
        self.run = run
        self.on_failure = on_failure
        self.failure: OSError | None = None
        self._events = self._open(EVENTS)
        self._samples = self._open(SAMPLES)
        self._install_log = self._open(INSTALL_LOG)

    def _open(self, name: str) -> IO[str]:
        path = self.run.path / name
        handle = open_append(path)
        # Repair a torn last line so the next event starts on a line of its own.
        size = os.fstat(handle.fileno()).st_size
        if size and os.pread(handle.fileno(), 1, size - 1) != b"\n":
            handle.write("\n")
        return handle

    def __call__(self, event: Event) -> None:
        if self.failure is not None:
            return  # stopped: the owner knows (a line now would be out of order anyway)
        try:
            self._write(event)
        except OSError as exc:
            if exc.filename is None:
                exc.filename = str(self.run.path / (SAMPLES if isinstance(event, SampleTaken) else EVENTS))
            self.failure = exc
            if self.on_failure is None:
                raise JournalFailed(journal_failure(exc)) from exc
            self.on_failure(exc)

    def _write(self, event: Event) -> None:
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
            try:
                outcome = run.read_meta().get("outcome")
            except BadInput:
                outcome = None  # damaged: listed, and resuming it says why it cannot
            if outcome not in COMPLETE_OUTCOMES:
                runs.append(run)
    return runs
