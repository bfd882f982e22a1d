"""`vast-loopback fleet plan|up|status|down` and `destroy`: the thin command line over backend/fleet.py.

Headless `fleet up` prints one line per member event, prefixed with the member's name (with
--json, every event as a JSON object with a "member" key). Deleting asks first, unless --yes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from backend.errors import BadInput
from backend.model import answers as answers_mod
from backend.run import fleet
from backend.run.bus import EventBus
from backend.secrets import redact_data
from backend.target import TargetOptions, default_speed, open_target
from tui.headless import HeadlessPrinter, check_secrets


class _Prefixed:
    """A stream that puts the member's name before every line."""

    def __init__(self, name: str, width: int) -> None:
        self.prefix = f"{name:<{width}} | "

    def write(self, text: str) -> None:
        for line in text.rstrip("\n").split("\n"):
            sys.stdout.write(self.prefix + line + "\n")

    def flush(self) -> None:
        sys.stdout.flush()


def _printers(json_lines: bool, width: int = 20) -> fleet.MemberHook:
    def hook(name: str, bus: EventBus) -> None:
        if json_lines:
            def emit(event) -> None:  # noqa: ANN001
                data = {"member": name, **redact_data(event.to_dict())}
                sys.stdout.write(json.dumps(data, separators=(",", ":"), default=str) + "\n")
                sys.stdout.flush()
            bus.subscribe(emit)
        else:
            bus.subscribe(HeadlessPrinter(stream=_Prefixed(name, width)))  # type: ignore[arg-type]
        return None
    return hook


def _print_plan(data: dict) -> None:
    print(f"{'node':<12} {'members':>7} {'vCPUs used/cores':>17} {'memory used/total GiB':>22} {'left GiB':>9}")
    for row in data["nodes"]:
        print(f"{row['node']:<12} {row['members']:>7} {row['vcpus_used']:>8}/{row['cores']:<8} "
              f"{row['memory_used_gib']:>12.1f}/{row['memory_total_gib']:<9.1f} {row['memory_available_gib']:>9.1f}")
    for m in data["members"]:
        print(f"  {m['name']} ({m['cluster_name']}) on {m['node']}: {m['vcpus']} vCPUs, {m['memory_gib']} GiB, "
              f"{m['disk_gib']} GiB disk on {m['storage']}")
    print(data["summary"])


def run_plan(answers_path: str, count: int, json_out: bool, speed: float | None, strict: bool = False) -> int:
    answers = answers_mod.load(answers_path)
    check_secrets(answers, strict)
    fleet.check_count(answers, count)

    async def go() -> dict:
        with tempfile.TemporaryDirectory(prefix="vlb-plan-") as state:
            target = await open_target(answers, TargetOptions(speed=speed or default_speed(answers.proxmox.url),
                                                              state_dir=Path(state)))
            try:
                placement = await fleet.plan(answers, target, count)
            finally:
                await target.close()
        return fleet.plan_dict(answers, placement)

    data = asyncio.run(go())
    if json_out:
        print(json.dumps(data, indent=2))
    else:
        _print_plan(data)
    return 0 if data["ok"] else 3


def run_up(answers_path: str | None, count: int | None, run_dir: str | None, resume_dir: str | None,
           speed: float | None, json_lines: bool, retry_on_failure: bool, strict: bool = False) -> int:
    options = fleet.FleetOptions(speed=speed, retry_on_failure=retry_on_failure)
    if resume_dir:
        if answers_path or count:
            raise BadInput("fleet up --resume DIR takes no ANSWERS or --count (the fleet recorded them)")
        code = asyncio.run(fleet.resume(resume_dir, options, on_member=_printers(json_lines)))
        directory = resume_dir
    else:
        if not answers_path or not count or not run_dir:
            raise BadInput("fleet up needs ANSWERS, --count N and --run-dir DIR (or --resume DIR)")
        answers = answers_mod.load(answers_path)
        check_secrets(answers, strict)

        def show_plan(data: dict) -> None:
            if json_lines:
                print(json.dumps({"type": "FleetPlanned", **data}, separators=(",", ":")))
            else:
                _print_plan(data)

        code = asyncio.run(fleet.up(answers, count, run_dir, options, on_member=_printers(json_lines),
                                    on_plan=show_plan, answers_source=str(Path(answers_path).resolve())))
        directory = run_dir
    if not json_lines:
        print(f"fleet directory: {directory} ({'all members ONLINE' if code == 0 else f'exit {code}'})")
    return code


def run_status(run_dir: str, json_out: bool) -> int:
    data = asyncio.run(fleet.status(run_dir))
    if json_out:
        members = [{"name": r["name"], "node": r["node"], "vmid": r["vmid"], "state": r["state"],
                    "address": r["address"], "phase": r["phase"], "outcome": r["outcome"], "vms_url": r["vms_url"]}
                   for r in data["members"]]
        print(json.dumps({"fleet": data["fleet"], "members": members, "vms_left": data["vms_left"]}, indent=2))
        return 0
    print(f"{'member':<22} {'node':<8} {'vmid':>6} {'phase':<28} {'cluster':<12} {'address':<16} VMS")
    for r in data["all"]:
        print(f"{r['name']:<22} {r['node'] or '-':<8} {r['vmid'] or '-':>6} {(r['phase'] or '-')[:28]:<28} "
              f"{r['state'] or '-':<12} {r['address'] or '-':<16} {r['vms_url'] or '-'}")
    print(f"{data['vms_left']} member VM(s) on the cluster")
    return 0


def _confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise BadInput("deleting VMs needs a confirmation", hint="run it in a terminal, or add --yes")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _report_cleanup(results: dict[str, dict]) -> int:
    left = 0
    for path, cleanup in results.items():
        for vm in cleanup["deleted"]:
            print(f"deleted VM {vm['vmid']} '{vm['name']}' on {vm['node']} ({Path(path).name})")
        for vm in cleanup["left"]:
            left += 1
            print(f"LEFT VM {vm['vmid']} '{vm['name']}' on {vm['node']}: {vm['why']}")
    if not any(c["deleted"] or c["left"] for c in results.values()):
        print("no VM claimed by these runs is on the cluster")
    return 1 if left else 0


def run_down(run_dir: str, yes: bool) -> int:
    fleet.FleetDir.open(run_dir)
    if not _confirm(f"Stop and delete every VM of the fleet {run_dir} (disks and snapshots)?", yes):
        print("nothing deleted")
        return 0
    return _report_cleanup(asyncio.run(fleet.down(run_dir)))


def run_destroy(run_dir: str, yes: bool) -> int:
    if fleet.is_fleet(run_dir):
        raise BadInput(f"{run_dir} is a fleet directory", hint=f"use: vast-loopback fleet down {run_dir}")
    from backend.run.journal import RunDir

    RunDir.open(run_dir)
    if not _confirm(f"Stop and delete the VM the run {run_dir} created (disk and snapshots)?", yes):
        print("nothing deleted")
        return 0
    return _report_cleanup(asyncio.run(fleet.destroy_runs([Path(run_dir)])))


def run_report(run_dir: str, json_out: bool) -> int:
    rows, path = fleet.class_report(run_dir)
    if json_out:
        print(json.dumps({"report_path": str(path), "members": rows}, indent=2, default=str))
    else:
        print(f"wrote {path} ({sum(1 for r in rows if r['cluster_state'] == 'ONLINE')} of {len(rows)} ONLINE)")
    return 0
