"""The jump-host side of the monitoring agent: start it, read its JSON lines, turn them into events.

`MonitorSession(source, bus, clock)` runs the agent through a *line source* and emits, with every
guest time mapped through the target clock (`clock.to_target` for instants, `clock.duration` for
lengths):
  hello  -> MonitorStarted          sample -> SampleTaken (sample["t"] on the target clock)
  gap    -> StallDetected           kmsg   -> KernelMessageSeen          warn -> MonitorWarned
When the stream drops (SSH lost, agent killed, nothing heard for `silence_s`), it starts the agent
again with backoff (target seconds: 1 s after a stream that ran, longer after starts that failed),
passing the resume points the agent reported (last kernel message sequence, byte offsets of tailed
logs) so no kernel or log line is lost or repeated, and emits
`SamplingGapped(start, end)` for the time no sample covers: the gap is shown, never interpolated.

Line sources: `GuestAgentSource(guest)` uploads the agent over the guest client and runs it with
/usr/libexec/platform-python (Python 3.6 on Rocky 8), else python3; `SubprocessSource(argv)` runs
it (or anything printing the same lines) as a local process, for tests and local use.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from backend import events as ev
from backend.clients.commands import sh
from backend.clock import Clock
from backend.monitor import agent_source
from backend.run.bus import EventBus

log = logging.getLogger(__name__)

LineSource = Callable[[list[str]], AsyncIterator[str]]
"""Given the agent's arguments, yields its stdout lines; ends (or raises) when the stream drops."""

PYTHONS = ("/usr/libexec/platform-python", "python3")
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
STALL_THRESHOLD_S = 0.050  # target time: the shortest stall worth reporting
MIN_WALL_INTERVAL_S = 0.05  # the agent never samples faster than 20 Hz, however compressed the clock
MIN_BACKOFF_WALL_S = 0.02  # however compressed the clock, never restart the agent in a tighter loop


class SubprocessSource:
    """Runs `argv + agent arguments` as a local process and yields its stdout lines."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)

    async def __call__(self, args: list[str]) -> AsyncIterator[str]:
        process = await asyncio.create_subprocess_exec(
            *self.argv, *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        try:
            assert process.stdout is not None
            async for raw in process.stdout:
                yield raw.decode("utf-8", "replace").rstrip("\n")
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 5)
                except asyncio.TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()


class GuestAgentSource:
    """Uploads the agent to the guest (once, and again after a start that printed nothing) and
    runs it over the guest client's SSH connection (`GuestClient.upload`, `GuestClient.stream`).
    With `sudo` it can read /dev/kmsg and docker's container configs."""

    def __init__(self, guest: Any, *, sudo: bool = True, remote_dir: str | None = None) -> None:
        self.guest = guest
        self.sudo = sudo
        self.remote_dir = remote_dir
        self.source = agent_source()
        self.digest = hashlib.sha256(self.source.encode()).hexdigest()[:12]
        self.remote_path: str | None = None

    async def _upload(self) -> str:
        folder = self.remote_dir
        if folder is None:
            home = getattr(self.guest, "home", None)
            folder = f"{await home()}/.vast-loopback" if home else "/tmp"
        path = f"{folder}/monitor-agent-{self.digest}.py"
        await self.guest.upload(self.source.encode(), path, 0o644)
        return path

    def command(self, path: str, args: list[str]) -> str:
        """platform-python when the guest has it, else python3; every argument quoted."""
        first, fallback = PYTHONS
        return (f"if [ -x {sh(first)} ]; then exec {sh(first, path, *args)}; "
                f"else exec {sh(fallback, path, *args)}; fi")

    async def __call__(self, args: list[str]) -> AsyncIterator[str]:
        if self.remote_path is None:
            self.remote_path = await self._upload()
        printed = False
        try:
            async for line in self.guest.stream(self.command(self.remote_path, args), sudo=self.sudo):
                printed = True
                yield line
        finally:
            if not printed:
                self.remote_path = None  # upload again next time (a reboot may have emptied /tmp)


class MonitorSession:
    """Keeps the agent running and its lines flowing into events; see the module docstring.

    `interval_s` and stall lengths are target time: with a compressed clock the agent samples
    faster on the wall (never above 20 Hz) and reports stops from 50 target ms, while late ticks
    (real scheduling delays, which are physical) keep their 50 wall ms threshold."""

    def __init__(self, source: LineSource, bus: EventBus, clock: Clock | None = None, *,
                 interval_s: float = 1.0, tick_s: float | None = None, tails: Sequence[str] = (),
                 backoff_s: Sequence[float] = BACKOFF_S, silence_s: float | None = None) -> None:
        self.source = source
        self.bus = bus
        self.clock = clock or bus.clock
        self.interval_s = interval_s
        self.tick_s = tick_s
        self.tails = list(tails)
        self.backoff_s = list(backoff_s) or [1.0]
        self.wall_interval = max(MIN_WALL_INTERVAL_S, self.clock.wall_seconds(interval_s))
        self.silence_s = silence_s if silence_s is not None else max(15.0, 10 * self.wall_interval)
        self.kmsg_seq: int | None = None
        self.tail_offsets: dict[str, int] = {}
        self.samples = 0
        self.starts = 0
        self.last_covered: float | None = None  # target time up to which samples cover
        self.down_since: float | None = None
        self.down_reason = ""
        self.bad_lines = 0
        self._stopping = asyncio.Event()
        self._warned_silent_start = False

    # --- arguments -------------------------------------------------------------------------------

    def agent_args(self) -> list[str]:
        args = ["--interval", f"{self.wall_interval:.6g}"]
        if self.tick_s is not None:
            args += ["--tick", f"{self.tick_s:.6g}"]
        if self.clock.scale != 1:
            threshold_ms = self.clock.wall_seconds(STALL_THRESHOLD_S) * 1000
            args += ["--threshold-ms", f"{threshold_ms:.6g}", "--late-threshold-ms", f"{STALL_THRESHOLD_S * 1000:g}"]
        if self.kmsg_seq is not None:
            args += ["--kmsg-after", str(self.kmsg_seq)]
        for path in self.tails:
            args += ["--tail", path]
        for path, offset in sorted(self.tail_offsets.items()):
            args += ["--tail-at", f"{offset}:{path}"]
        return args

    # --- running ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until `stop()` (or cancellation); reconnects on its own."""
        attempt = 0
        try:
            while not self._stopping.is_set():
                heard = await self._one_stream()
                if self._stopping.is_set():
                    break
                attempt = 0 if heard else attempt + 1
                if not heard and attempt >= 3 and not self._warned_silent_start:
                    self._warned_silent_start = True
                    self.bus.emit(ev.MonitorWarned(part="agent", text=(
                        "the monitoring agent ended without saying hello three times in a row "
                        "(is Python 3 on the guest?); still retrying")))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.backoff_wall(attempt))
        finally:
            if self.down_since is not None:
                now = self.clock.now()
                if now > self.down_since:
                    self.bus.emit(ev.SamplingGapped(start=self.down_since, end=now, reason=self.down_reason))
                self.down_since = None

    def stop(self) -> None:
        self._stopping.set()

    def backoff_wall(self, attempt: int) -> float:
        """Wall seconds to wait before starting the agent again: `backoff_s` is target time (a lab
        compressed 120-fold waits 1/120 of it, never under MIN_BACKOFF_WALL_S); `attempt` counts the
        starts in a row that never said hello (0: the stream ran, then dropped)."""
        delay = self.backoff_s[min(attempt, len(self.backoff_s) - 1)]
        return max(MIN_BACKOFF_WALL_S, self.clock.wall_seconds(delay))

    async def _one_stream(self) -> bool:
        """Read one agent run to its end; True when it said hello."""
        self.starts += 1
        heard = False
        lines = self.source(self.agent_args())
        reason = "the monitoring agent's output ended"
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            while True:
                reader = asyncio.ensure_future(lines.__anext__())
                done, _ = await asyncio.wait({reader, stopper}, timeout=self.silence_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if reader not in done:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                        await reader
                    if stopper in done:
                        return heard
                    reason = f"nothing heard from the monitoring agent for {self.silence_s:.0f} s"
                    break
                try:
                    line = reader.result()
                except StopAsyncIteration:
                    break
                except Exception as exc:  # the connection dropped: reconnect
                    reason = f"the monitoring stream was lost: {exc}"
                    break
                if self._handle(line) == "hello":
                    heard = True
        finally:
            stopper.cancel()
            with contextlib.suppress(Exception):
                await lines.aclose()
        self._mark_down(reason)
        return heard

    def _mark_down(self, reason: str) -> None:
        if self.down_since is None:
            self.down_since = self.last_covered if self.last_covered is not None else self.clock.now()
            self.down_reason = reason
        log.info("monitor stream down: %s", reason)

    # --- lines to events -------------------------------------------------------------------------

    def _handle(self, text: str) -> str | None:
        try:
            line = json.loads(text)
            kind = line.get("type")
        except (ValueError, AttributeError):
            self.bad_lines += 1
            return None
        try:
            handler = getattr(self, f"_on_{kind}", None)
            if handler is not None:
                handler(line)
        except (KeyError, TypeError, ValueError) as exc:
            self.bad_lines += 1
            log.warning("monitor line of type %s not understood: %s", kind, exc)
            return None
        return kind

    def _ms(self, wall_ms: float) -> float:
        return round(self.clock.duration(float(wall_ms) / 1000) * 1000, 3)

    def _on_hello(self, line: dict) -> None:
        self.bus.emit(ev.MonitorStarted(
            ts=self.clock.to_target(float(line["t"])), agent_version=str(line.get("version", "")),
            interval_s=self.clock.duration(float(line.get("interval", self.wall_interval))),
            python=str(line.get("python", "")), tick_ms=self._ms(float(line.get("tick", 0)) * 1000),
            warnings=list(line.get("warnings", []))))

    def _on_sample(self, line: dict) -> None:
        sample = {k: v for k, v in line.items() if k not in ("type", "resume")}
        t = self.clock.to_target(float(line["t"]))
        dt = self.clock.duration(float(line.get("dt", 0.0)))
        sample["guest_t"] = line["t"]
        sample["t"] = t
        sample["dt"] = round(dt, 6)
        if isinstance(sample.get("hb"), dict):  # the detector's worst lateness and its tick: target ms
            sample["hb"] = dict(sample["hb"], **{key: self._ms(sample["hb"][key]) for key in ("max_ms", "tick_ms")
                                                  if isinstance(sample["hb"].get(key), int | float)})
        resume = line.get("resume") or {}
        if resume.get("kmsg_seq") is not None:
            self.kmsg_seq = int(resume["kmsg_seq"])
        for path, offset in (resume.get("tail") or {}).items():
            self.tail_offsets[path] = int(offset)
        if self.down_since is not None:
            covered_from = t - dt
            if covered_from > self.down_since:
                self.bus.emit(ev.SamplingGapped(ts=covered_from, start=self.down_since, end=covered_from,
                                                reason=self.down_reason))
            self.down_since = None
        self.last_covered = t
        self.samples += 1
        self.bus.emit(ev.SampleTaken(ts=t, sample=sample))

    def _on_gap(self, line: dict) -> None:
        start = float(line["start"])
        length_ms = float(line["length_ms"])
        self.bus.emit(ev.StallDetected(
            ts=self.clock.to_target(start + length_ms / 1000), start=self.clock.to_target(start),
            length_ms=self._ms(length_ms), interval_ms=0.0, how=str(line.get("how", "")),
            err_ms=self._ms(float(line.get("err_ms", 0.0)))))

    def _on_kmsg(self, line: dict) -> None:
        if line.get("source") == "kmsg" and line.get("seq") is not None:
            seq = int(line["seq"])
            self.kmsg_seq = seq if self.kmsg_seq is None else max(self.kmsg_seq, seq)
        elif line.get("offset") is not None:
            self.tail_offsets[str(line["source"])] = int(line["offset"])
        self.bus.emit(ev.KernelMessageSeen(
            ts=self.clock.to_target(float(line["t"])), source=str(line.get("source", "")),
            text=str(line.get("text", "")), level=str(line.get("level", "")), match=str(line.get("match", "")),
            seq=int(line["seq"]) if line.get("seq") is not None else None,
            offset=int(line["offset"]) if line.get("offset") is not None else None))

    def _on_warn(self, line: dict) -> None:
        self.bus.emit(ev.MonitorWarned(ts=self.clock.to_target(float(line["t"])), part=str(line.get("part", "")),
                                       text=str(line.get("text", ""))))
