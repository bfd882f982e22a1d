"""The `vast-loopback` command line: the wizard, headless runs and the tools around them.

Exit codes everywhere: 0 done, 1 failed at run time, 2 bad input, 3 blocked by a sizing blocker.
No command ever shows a traceback: unexpected errors are written to a crash file and summarised.
Textual is imported only by the commands that show a UI, so headless runs never load it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from backend.errors import BadInput, VlbError
from backend.lab.scenarios import SCENARIOS
from backend.secrets import redact

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BLOCKED = 0, 1, 2, 3

DESCRIPTION = """\
A terminal wizard that takes a Proxmox VE host and the VAST Data 5.4 loopback OVA to a tuned VAST
loopback cluster, ONLINE, snapshotted, with a deployment analysis report.

With no arguments it starts the wizard (the built-in lab is offered first); with --answers FILE the
wizard opens prefilled from a saved answers file, on the first step that needs you."""

EPILOG = """\
commands:
  demo            the wizard on the built-in lab, the field report's host pre-selected (--answers FILE)
  check ANSWERS   validate answers and sizing against the host, change nothing
  probe ANSWERS --record FILE      record the host, read-only, for a bug report or the lab
  probe --guest RUN_DIR --record FILE   record a run's guest over its SSH, read-only
  schema          print the answers file's JSON Schema
  lab             serve the built-in lab in the foreground
  report RUN_DIR  write the deployment analysis report of a run (a fleet's: the class report)
  fleet plan|up|status|down   N loopback clusters across a Proxmox VE cluster
  destroy RUN_DIR stop and delete the VM a run created (its disks and snapshots)
  replay RUN_DIR  watch a recorded run in the live dashboard (--speed N)
  import-traces   turn a hand-made monitoring folder into a run directory
  agent --print   print the monitoring agent exactly as it is shipped to the guest

exit codes: 0 done, 1 failed at run time, 2 bad input, 3 blocked by a sizing blocker"""


STRICT_HELP = ("refuse a secret file that is a symlink, not yours, or open to group or others "
               "(default: a warning)")


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one short line (its default), never a traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("must be between 1 and 10000")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not a TCP port (1-65535)")
    return int(text)


def _fault_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"'{text}' is not a member count (1-64)")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vast-loopback",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--auto", metavar="ANSWERS", help="run headless from an answers file")
    parser.add_argument("--answers", metavar="FILE", dest="reopen",
                        help="open the wizard prefilled from a saved answers file, on the first step that needs you")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    parser.add_argument("--run-dir", metavar="DIR", help="where the run's journal goes")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    parser.add_argument("--force", action="store_true", help="go past sizing blockers on purpose")
    parser.add_argument("--speed", type=_speed, default=None, metavar="N",
                        help="compress the lab's time N-fold (default 30 on the lab; refused against a real host)")
    parser.add_argument("--until", metavar="STEP", help="stop after this step (e.g. pre-install)")
    parser.add_argument("--retry-on-failure", action="store_true",
                        help="after a diagnosed failure, roll back, apply the remedy and retry once")
    parser.add_argument("--strict", action="store_true", help=STRICT_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser("demo", help="the wizard on the built-in lab")
    demo.add_argument("--scenario", choices=SCENARIOS, default="success")
    demo.add_argument("--speed", type=_speed, default=30.0, dest="demo_speed", metavar="N")
    demo.add_argument("--web", action="store_true",
                      help="serve the demo in a browser (textual-serve), on the loopback, at a URL with a token")
    demo.add_argument("--port", type=_port, default=8000, help="port for --web")
    demo.add_argument("--answers", metavar="FILE", dest="demo_answers",
                      help="open the demo's wizard prefilled from a saved answers file (instead of the scenario's sizes)")
    demo.add_argument("--kiosk", action="store_true", help=argparse.SUPPRESS)  # each --web session runs this

    check = sub.add_parser("check", help="validate answers and sizing, change nothing")
    check.add_argument("answers", metavar="ANSWERS")
    check.add_argument("--json", action="store_true", dest="check_json")
    check.add_argument("--strict", action="store_true", dest="check_strict", help=STRICT_HELP)

    probe = sub.add_parser("probe", help="record the host (or a run's guest) read-only, as JSON")
    probe.add_argument("answers", metavar="ANSWERS", nargs="?", help="the answers naming the host")
    probe.add_argument("--guest", metavar="RUN_DIR", help="record the guest of this run instead, over its SSH")
    probe.add_argument("--record", metavar="FILE", required=True, help="where the recording goes")
    probe.add_argument("--anonymise", "--anonymize", action="store_true",
                       help="placeholders for the names of VMs, nodes and the cluster")
    probe.add_argument("--strict", action="store_true", dest="probe_strict", help=STRICT_HELP)

    sub.add_parser("schema", help="print the answers file's JSON Schema")

    lab = sub.add_parser("lab", help="serve the built-in lab in the foreground")
    lab.add_argument("--host-profile", default="seed", metavar="PROFILE",
                     help="seed, small, big, or the PATH of a host recording (probe --record)")
    lab.add_argument("--speed", type=_speed, default=1.0, dest="lab_speed", metavar="N")
    lab.add_argument("--state-dir", metavar="DIR", help="keep the lab's world here (default: a temp dir)")
    lab.add_argument("--fault-rate", type=_fault_rate, default=0.0, metavar="P",
                     help="inject faults: probability per request / SSH session (0..1; recorded in faults.jsonl)")
    lab.add_argument("--fault-seed", type=int, default=1, metavar="N", help="seed of the random faults")

    report = sub.add_parser("report", help="write the deployment analysis report of a run")
    report.add_argument("run_dir", metavar="RUN_DIR")
    report.add_argument("--json", action="store_true", dest="report_json")
    report.add_argument("--output", metavar="FILE", help="where report.md goes (default: RUN_DIR/report.md)")

    fleet = sub.add_parser("fleet", help="N loopback clusters across a Proxmox VE cluster")
    fleet_sub = fleet.add_subparsers(dest="fleet_command", metavar="plan|up|status|down", parser_class=_Parser)
    fplan = fleet_sub.add_parser("plan", help="place N members on the cluster's nodes, change nothing")
    fplan.add_argument("answers", metavar="ANSWERS")
    fplan.add_argument("--count", type=_count, required=True, metavar="N")
    fplan.add_argument("--json", action="store_true", dest="fleet_json")
    fup = fleet_sub.add_parser("up", help="bring N members up in parallel (or --resume DIR)")
    fup.add_argument("answers", metavar="ANSWERS", nargs="?")
    fup.add_argument("--count", type=_count, metavar="N")
    fup.add_argument("--run-dir", metavar="DIR", dest="fleet_run_dir")
    fup.add_argument("--resume", metavar="DIR", dest="fleet_resume")
    fup.add_argument("--speed", type=_speed, default=None, dest="fleet_speed", metavar="S")
    fup.add_argument("--json", action="store_true", dest="fleet_json")
    fup.add_argument("--retry-on-failure", action="store_true", dest="fleet_retry")
    fstatus = fleet_sub.add_parser("status", help="a row per member: node, VM, phase, cluster state, address")
    fstatus.add_argument("fleet_dir", metavar="DIR")
    fstatus.add_argument("--json", action="store_true", dest="fleet_json")
    fdown = fleet_sub.add_parser("down", help="stop and delete every member's VM")
    fdown.add_argument("fleet_dir", metavar="DIR")
    fdown.add_argument("--yes", action="store_true", help="do not ask")

    destroy = sub.add_parser("destroy", help="stop and delete the VM a run created (disks and snapshots)")
    destroy.add_argument("run_dir", metavar="RUN_DIR")
    destroy.add_argument("--yes", action="store_true", help="do not ask")

    replay = sub.add_parser("replay", help="watch a recorded run in the live dashboard")
    replay.add_argument("run_dir", metavar="RUN_DIR")
    replay.add_argument("--speed", type=_speed, default=30.0, dest="replay_speed", metavar="N",
                        help="N times the recorded run's pace (default 30)")
    replay.add_argument("--hints", choices=SCENARIOS, default=None,
                        help="show the demo's hints for this scenario")

    imp = sub.add_parser("import-traces", help="turn a hand-made monitoring folder into a run directory")
    imp.add_argument("traces", metavar="DIR")
    imp.add_argument("--run-dir", required=True, dest="import_run_dir", metavar="OUT")

    agent = sub.add_parser("agent", help="the monitoring agent shipped to the guest")
    agent.add_argument("--print", action="store_true", dest="print_agent", help="print it")
    return parser


class _LastResort(logging.Handler):
    """What Python prints for a log record no handler takes (a warning, or an unexpected error a
    step logged with its traceback): one line on stderr, redacted, never a traceback."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += f": {record.exc_info[1].__class__.__name__}: {record.exc_info[1]}"
            lines = redact(text).strip().splitlines() or [""]
            print(f"vast-loopback: {record.levelname.lower()}: {lines[0][:300]}", file=sys.stderr)
        except Exception:  # logging must never raise
            self.handleError(record)


def _crash_file(exc: BaseException) -> Path:
    fd, name = tempfile.mkstemp(prefix="vast-loopback-crash-", suffix=".txt")
    with os.fdopen(fd, "w") as handle:
        handle.write(redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))))
    return Path(name)


def main(argv: list[str] | None = None) -> int:
    logging.lastResort = _LastResort(logging.WARNING)
    try:
        code = _dispatch(build_parser().parse_args(argv))
    except SystemExit as exc:  # argparse and --help
        code = exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    except VlbError as exc:
        print(f"vast-loopback: {redact(str(exc))}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("vast-loopback: interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:
        code = EXIT_FAILED
    except Exception as exc:  # never a traceback on screen
        path = _crash_file(exc)
        print(f"vast-loopback: internal error: {exc.__class__.__name__}: {redact(str(exc))[:300]}\n"
              f"  details: {path}", file=sys.stderr)
        code = EXIT_FAILED
    if __name__ == "__main__" or argv is None:
        sys.stdout.flush()
    return code


def _dispatch(args: argparse.Namespace) -> int:
    import backend.lab  # noqa: F401  - registers the 'lab' target provider (the entry point's choice)

    command = args.command
    reopen = args.reopen or getattr(args, "demo_answers", None)
    if reopen and (args.auto or args.resume or command not in (None, "demo")):
        raise BadInput("--answers FILE opens the wizard; give the file to --auto (headless) or to the command itself")
    if command is None and args.auto and args.resume:
        raise BadInput("--auto and --resume cannot be used together")
    if command is None and (args.auto or args.resume):
        from tui import headless

        return headless.run_headless(
            answers_path=args.auto,
            resume_dir=args.resume,
            run_dir=args.run_dir,
            json_lines=args.json,
            force=args.force,
            speed=args.speed,
            until=args.until,
            retry_on_failure=args.retry_on_failure,
            strict=args.strict,
        )
    if command is None:
        from tui.app import run_wizard

        return run_wizard(speed=args.speed, run_dir=args.run_dir, force=args.force, answers=reopen)
    if command == "demo":
        from tui.app import run_demo

        return run_demo(scenario=args.scenario, speed=args.speed or args.demo_speed, web=args.web, port=args.port,
                        kiosk=args.kiosk, answers=reopen)
    if command == "check":
        from tui import headless

        return headless.run_check(args.answers, json_out=args.check_json or args.json, speed=args.speed,
                                  strict=args.check_strict or args.strict)
    if command == "probe":
        from tui import probing

        if bool(args.answers) == bool(args.guest):
            raise BadInput("probe: give ANSWERS (the host) or --guest RUN_DIR (a run's guest), one of them")
        strict = args.probe_strict or args.strict
        if args.guest:
            if args.anonymise:
                raise BadInput("probe: --anonymise is for a host recording (a guest's holds no names)")
            return probing.run_guest_probe(args.guest, args.record, strict=strict, speed=args.speed)
        return probing.run_probe(args.answers, args.record, anonymise=args.anonymise, strict=strict,
                                 speed=args.speed)
    if command == "schema":
        from backend.model.answers import schema_json

        print(schema_json())
        return EXIT_OK
    if command == "lab":
        from backend.lab.serve import serve_foreground

        return serve_foreground(profile=args.host_profile, speed=args.lab_speed, state_dir=args.state_dir,
                                fault_rate=args.fault_rate, fault_seed=args.fault_seed)
    if command == "report":
        from backend.analysis.report import write_report
        from backend.run.fleet import is_fleet

        if is_fleet(args.run_dir):
            from tui.fleetcli import run_report

            if args.output:
                raise BadInput("report --output: a fleet's class report goes to DIR/report.md")
            return run_report(args.run_dir, json_out=args.report_json or args.json)

        return write_report(args.run_dir, json_out=args.report_json or args.json, output=args.output)
    if command == "fleet":
        return _fleet(args)
    if command == "destroy":
        from tui.fleetcli import run_destroy

        return run_destroy(args.run_dir, yes=args.yes)
    if command == "replay":
        from tui.replay_app import run_replay

        return run_replay(args.run_dir, speed=args.replay_speed, hints=args.hints)
    if command == "import-traces":
        from backend.analysis.importer import import_traces

        started = time.monotonic()
        run = import_traces(args.traces, args.import_run_dir)
        print(f"imported {args.traces} into {run.path} in {time.monotonic() - started:.2f} s")
        return EXIT_OK
    if command == "agent":
        from backend.monitor import agent_source

        if not args.print_agent:
            raise BadInput("agent: use --print to print the agent as it is shipped")
        sys.stdout.write(agent_source())
        return EXIT_OK
    raise BadInput(f"unknown command {command}")


def _fleet(args: argparse.Namespace) -> int:
    from tui import fleetcli

    sub = args.fleet_command
    json_out = getattr(args, "fleet_json", False) or args.json
    if sub == "plan":
        return fleetcli.run_plan(args.answers, args.count, json_out, args.speed, strict=args.strict)
    if sub == "up":
        return fleetcli.run_up(args.answers, args.count, args.fleet_run_dir or args.run_dir, args.fleet_resume,
                               args.fleet_speed or args.speed, json_out, args.fleet_retry or args.retry_on_failure,
                               strict=args.strict)
    if sub == "status":
        return fleetcli.run_status(args.fleet_dir, json_out)
    if sub == "down":
        return fleetcli.run_down(args.fleet_dir, yes=args.yes)
    raise BadInput("fleet: give one of plan, up, status, down")


if __name__ == "__main__":
    sys.exit(main())
