"""Headless runs (`--auto`, `--resume`, `check`) and the line printer that follows their events.

This path never imports Textual. The printer reads the same events as the dashboard: in text mode
it prints one line per fact worth a line; with --json it prints every event as one JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import TextIO

from backend import events as ev
from backend.analysis import evidence
from backend.errors import BadInput
from backend.model import answers as answers_mod
from backend.model.guestmemory import sized
from backend.run import service
from backend.run.engine import RunOptions
from backend.run.plan import resolve_until, step_ids
from backend.run.runstate import RunState
from backend.secrets import redact, redact_data
from backend.steps.guestaddr import LocalNetworks

SAMPLE_EVERY_S = 60.0  # text mode: one resource line per target minute


def _fmt_elapsed(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s"


class HeadlessPrinter:
    """Prints events as they happen: lines for people, or JSON objects for machines."""

    def __init__(self, stream: TextIO | None = None, json_lines: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.json_lines = json_lines
        self.state = RunState()
        self._last_sample_ts = 0.0

    def __call__(self, event: ev.Event) -> None:
        self.state.apply(event)
        if self.json_lines:
            self._write(json.dumps(redact_data(event.to_dict()), separators=(",", ":"), default=str), raw=True)
            return
        line = self.describe(event)
        if line:
            start = self.state.started or event.ts
            self._write(f"[{_fmt_elapsed(event.ts - start)}] {line}")

    def _write(self, text: str, raw: bool = False) -> None:
        try:
            self.stream.write((text if raw else redact(text)) + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass

    def describe(self, e: ev.Event) -> str | None:  # noqa: C901 - one branch per event type
        s = self.state
        match e:
            case ev.RunStarted():
                verb = "resumed" if e.resumed else "started"
                return f"run {e.run_id} {verb} on {e.where or e.target} for VM {e.vm_name}"
            case ev.StepStarted():
                return f"> {e.title}"
            case ev.StepFinished(ok=True):
                step = s.steps.get(e.step)
                return f"  done: {step.title if step else e.step} ({_fmt_duration(step.duration if step else None)})"
            case ev.StepFinished(ok=False):
                return f"  FAILED: {e.step}: {e.error}"
            case ev.StepSkipped():
                return f"  skipped {e.step}: {e.reason}"
            case ev.StepProgressed():
                return f"  {e.message}"
            case ev.HostFactsGathered():
                f = e.facts
                return (f"  host {e.node}: {f.get('cores')} cores / {f.get('threads')} threads, "
                        f"{f.get('mem_total', 0) / 1024**3:.1f} GiB host RAM, PVE {e.pve_version}")
            case ev.SizingEvaluated():
                memory = e.recommendation.get("memory_gib")
                lines = [f"  sizing: recommendation {e.recommendation.get('vcpus')} vCPUs, "
                         f"VM RAM {sized(memory) if isinstance(memory, int | float) else memory}, "
                         f"{e.recommendation.get('disk_gib')} GiB disk"]
                for finding in e.findings:
                    if finding["severity"] != "info":
                        lines.append(f"  {finding['severity'].upper()}: {finding['message']} -> {finding['remedy']}")
                if e.forced:
                    lines.append("  blockers overridden with --force")
                return "\n".join(lines)
            case ev.ProxmoxTaskFinished(ok=False):
                tail = "; ".join(e.log_tail[-3:])
                return f"  Proxmox task {e.task_type} failed: {e.exitstatus}" + (f" ({tail})" if tail else "")
            case ev.VmCreated():
                return f"  created VM {e.vmid} '{e.name}' on {e.node}"
            case ev.VmFound():
                return f"  found VM {e.vmid} '{e.name}' on {e.node} (not creating another)"
            case ev.VmConfigured():
                return "  VM config: " + ", ".join(f"{k}={v}" for k, v in e.changes.items())
            case ev.VmPowerChanged():
                return f"  VM {e.vmid} {e.state} ({e.action})"
            case ev.SnapshotCreated():
                return f"  snapshot '{e.name}' taken"
            case ev.SnapshotRolledBack():
                return f"  rolled back to snapshot '{e.name}'"
            case ev.BootAttemptFailed():
                then = f"; trying {e.next_controller}" if e.next_controller else "; no controller left to try"
                return (f"  the guest did not come up on {e.controller} within {_fmt_duration(e.waited_s)} "
                        f"({e.reason}){then}")
            case ev.RootFilesystemVerified():
                how = f"grown from {e.before_gib:.0f} GiB" if e.grown else "already filled its disk"
                return f"  root filesystem {e.device} ({e.fstype}): {e.size_gib:.0f} GiB, {how}"
            case ev.GuestAddressResolved():
                return f"  guest address {e.address} (from {e.source}{': ' + e.detail if e.detail else ''})"
            case ev.GuestConnected():
                return f"  SSH to {e.user}@{e.address} (host key {e.host_key})"
            case ev.GuestRebooted():
                return f"  the guest rebooted ({e.why})"
            case ev.VastRestarted(ok=True):
                return f"  VAST came back with {e.how}: ONLINE {_fmt_duration(e.online_after_s)} after the reboot"
            case ev.VastRestarted(ok=False):
                return f"  VAST did not come back with {e.how}: {e.problem}"
            case ev.VmsCertificateTrusted():
                how = f"CA {e.ca_file}" if e.ca_file else f"pinned {e.fingerprint}"
                return f"  VMS at {e.address}: certificate {how} ({e.source})"
            case ev.GuestDisconnected():
                return f"  guest connection lost: {e.reason}"
            case ev.GuestReconnected():
                return f"  guest reconnected after {e.attempts} attempts ({_fmt_duration(e.down_s)} down)"
            case ev.TuningChecked():
                mark = "ok " if e.ok else "BAD"
                when = " after reboot" if e.after_reboot else ""
                return f"  [{mark}] {e.id}{when}: expected {e.expected}, observed {e.observed}"
            case ev.PreflightChecked():
                bad = [i for i in e.items if not i.get("ok")]
                lines = [f"  preflight: {len(e.items) - len(bad)}/{len(e.items)} checks passed"]
                lines += [f"  [{i.get('severity', 'blocker')}] {i.get('title')}: expected {i.get('expected')}, "
                          f"observed {i.get('observed')}" for i in bad]
                return "\n".join(lines)
            case ev.ClusterStateChanged():
                return f"  cluster state {e.previous or '-'} -> {e.state} (from {e.source})"
            case ev.VtaskChanged():
                runtime = f" in {_fmt_duration(e.runtime_s)}" if e.runtime_s else ""
                return f"  task {e.name} ({e.task_id}) {e.state}{runtime}"
            case ev.StallDetected() if e.length_ms >= 1000:
                return f"  STALL: the guest stood still for {e.length_ms / 1000:.2f} s"
            case ev.KernelMessageSeen():
                return f"  kernel/{e.source}: {e.text}"
            case ev.GuestRecordRead():
                return f"  {evidence.describe(e)}"
            case ev.SamplingGapped():
                return f"  monitoring gap of {_fmt_duration(e.end - e.start)} ({e.reason})"
            case ev.SampleTaken():
                if e.ts - self._last_sample_ts < SAMPLE_EVERY_S:
                    return None
                self._last_sample_ts = e.ts
                return "  " + describe_sample(e.sample)
            case ev.AlertRaised():
                return f"  ALERT ({e.severity}): {e.message}"
            case ev.DiagnosisMade():
                return "\n".join(f"  DIAGNOSIS {i['id']}: {i['cause']} -> {i['remedy']}" for i in e.items)
            case ev.RemedyApplied():
                return f"  remedy {e.id} applied (attempt {e.attempt}): {e.changes}"
            case ev.RetryScheduled():
                return f"  retrying {e.operation} in {e.delay_s:.1f} s (attempt {e.attempt}): {e.error}"
            case ev.RecoveredFromFault():
                return f"  recovered: {e.operation} after {e.attempts} attempts"
            case ev.ReportWritten():
                return f"  report written to {e.path}"
            case ev.RunFinished():
                return f"run {e.outcome} (exit {e.exit_code})" + (f": {e.message}" if e.message else "")
        return None


def describe_sample(sample: dict) -> str:
    cpu = sample.get("cpu", {})
    mem = sample.get("mem", {})
    load = sample.get("load", [0, 0, 0])
    return (f"cpu user {cpu.get('user', 0):.0f}% sys {cpu.get('sys', 0):.0f}% steal {cpu.get('steal', 0):.1f}% | "
            f"load {load[0]:.1f} | guest mem used {mem.get('used', 0) / 1024**3:.1f} GiB, "
            f"available {mem.get('available', 0) / 1024**3:.1f} GiB")


# --- headless runs ------------------------------------------------------------------------------


def check_secrets(answers: answers_mod.Answers, strict: bool) -> None:
    """Every secret resolved and checked before anything starts; warnings about secret files
    (symlinked, not ours, open to others) on stderr, refused with `strict`."""
    for warning in answers_mod.check_secrets(answers, strict=strict):
        print(f"vast-loopback: warning: {warning}", file=sys.stderr)


def run_headless(*, answers_path: str | None, resume_dir: str | None, run_dir: str | None, json_lines: bool,
                 force: bool, speed: float | None, until: str | None, retry_on_failure: bool,
                 strict: bool = False) -> int:
    until = resolve_until(until)
    if until and until not in step_ids():
        raise BadInput(f"--until {until}: no such step", hint="use pre-install, online or one of: "
                       + ", ".join(step_ids()))
    if resume_dir:
        run = service.resume(resume_dir, speed=speed, until=until, force=force, retry_on_failure=retry_on_failure)
        if run.finished:
            print(f"run {run.run.path} already finished ({run.finished}); nothing to resume")
            return 0
        try:
            check_secrets(run.answers, strict)
        except BaseException:
            run.release()
            raise
    else:
        assert answers_path is not None
        answers = answers_mod.load(answers_path)
        check_secrets(answers, strict)  # bad input before a run directory exists
        run = service.start(answers, run_dir=run_dir, speed=speed,
                            options=RunOptions(force=force, until=until, retry_on_failure=retry_on_failure),
                            source=str(Path(answers_path).resolve()))
    try:
        code = asyncio.run(_run(run, json_lines))
    finally:
        run.release()
    if run.run.skipped:  # read by the resume (finished steps, the diagnosis's replay)
        print(f"vast-loopback: skipped {len(run.run.skipped):,} line(s) of the run's journal that are not what "
              "vast-loopback writes:\n  " + "\n  ".join(run.run.skipped.said()), file=sys.stderr)
    return code


async def _run(run: service.Run, json_lines: bool) -> int:
    printer = HeadlessPrinter(json_lines=json_lines)
    task = asyncio.ensure_future(service.drive(run, printer))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)
    try:
        code = await task
    except asyncio.CancelledError:
        code = 130
    if run.stopped:
        code = 1
        print(f"vast-loopback: the run stopped: {run.stopped}.\n  hint: free some space (or fix the disk), then "
              f"resume it with --resume {run.run.path}"
              + ("" if run.stopped_marked else f"\n  ({run.run.meta_path} could not be updated either)"),
              file=sys.stderr)
    if not json_lines:
        print(f"run directory: {run.run.path}")
        if code not in (0, 130) and any(isinstance(e, ev.VmCreated) for e in run.run.events()):
            print(f"  to remove the VM this run created (its disk and snapshots): vast-loopback destroy {run.run.path}")
    return code


# --- check ---------------------------------------------------------------------------------------


def run_check(answers_path: str, json_out: bool, speed: float | None, strict: bool = False) -> int:
    answers = answers_mod.load(answers_path)
    check_secrets(answers, strict)
    result = asyncio.run(service.check(answers, speed))
    if json_out:
        print(json.dumps(result, indent=2, default=str))
    else:
        host = result["host"]
        print(f"target: {result['target']}")
        print(f"host {host.get('node')}: {host.get('cores')} cores / {host.get('threads')} threads, "
              f"{host.get('mem_total', 0) / 1024**3:.1f} GiB host RAM, PVE {host.get('pve_version')}")
        local = result["host"].get("local_networks") or {}
        if local:
            print(f"this machine (where vast-loopback runs): {LocalNetworks.from_dict(local).describe()}")
        rec, vm = result["recommendation"], result["vm"]
        print(f"recommendation: {rec['vcpus']} vCPUs, VM RAM {sized(rec['memory_gib'])}, {rec['disk_gib']} GiB disk"
              + ("" if rec.get("feasible", True) else f" (this host cannot host it: {rec.get('reason')})"))
        print(f"checked:        {vm['vcpus']} vCPUs, VM RAM {sized(vm['memory_gib'])}, {vm['disk_gib']} GiB disk")
        for finding in result["findings"]:
            print(f"{finding['severity'].upper():8} {finding['message']}\n         -> {finding['remedy']}")
        print("ok" if result["ok"] else "blocked: fix the blockers above (or --force a run on purpose)")
    return 0 if result["ok"] else 3
