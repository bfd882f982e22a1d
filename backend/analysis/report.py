"""`vast-loopback report RUN_DIR`: the deployment analysis, laid out like the field report's.

Sections: summary, configuration, timeline with durations, CPU steal, load, memory timeline and
container memory, disk latency, scheduling-gap analysis, faults and recoveries, fixes applied
(tuning), findings and recommendations (diagnosis), the field report's prose beside this run's
data, summary statistics, and where the data came from (with the lines skipped while reading). Every
number comes from `backend.analysis.deployment.analyse` (the raw events and samples); `--json` prints that same
data. Text that comes from the run (event fields, file names) is made safe for Markdown first: one
line (control characters are spaces), no HTML (`<` is an entity), no extra table cells (`|` escaped).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from backend.analysis.charts import clock, column_chart
from backend.analysis.deployment import analyse
from backend.clients.vtask import TASK_FAILED_STATES
from backend.errors import BadInput
from backend.run.engine import VERSION
from backend.run.journal import RunDir
from backend.run.safefiles import skipped_line, write_private

_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")  # whatever could end or hide a Markdown line


REPORT = "report.md"


def duration(seconds: float | None) -> str:
    """`32 min 35 s`, `1 h 02 min 10 s`, `9 s`; '-' when unknown."""
    if seconds is None:
        return "-"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _n(value: object, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:,.{digits}f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}" if unit else text


def md_text(value: object) -> str:
    """Text from a run as it may stand in a line of Markdown: on that line, without HTML."""
    return _BREAKS.sub(" ", str(value)).replace("<", "&lt;")


def _safe(data: object) -> object:
    """The analysis with every text (keys included) through `md_text`; numbers and the rest kept."""
    if isinstance(data, str):
        return md_text(data)
    if isinstance(data, dict):
        return {_safe(key) if isinstance(key, str) else key: _safe(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_safe(item) for item in data]
    return data


def _cell(text: object) -> str:
    """A table cell: one line, and a `|` (or a backslash before one) never starts another cell."""
    return md_text(text).replace("\\", "\\\\").replace("|", "\\|")


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _stage_of(data: dict, t: float | None) -> str:
    if t is None:
        return "-"
    for row in data["cpu"]["stages"] or data["memory"]["stages"] or data["load"]["stages"]:
        if row["start"] <= t <= row["end"]:
            return row["stage"]
    return "-"


def _chart(data: dict, key: str, *, y_max: float | None = None, digits: int = 1,
           threshold: float | None = None) -> list[str]:
    charts = data.get("charts") or {}
    values = charts.get(key)
    if not values or all(v is None for v in values):
        return ["_(no data to plot)_", ""]
    markers = [(m["t"], m["mark"]) for m in data.get("markers", [])]
    lines = column_chart(values, charts["start"], charts["end"], height=8, y_max=y_max, digits=digits,
                         markers=markers, threshold=threshold)
    legend = ", ".join(sorted({f"{m['mark']} {m['label']}" for m in data.get("markers", [])}))
    note = f"one column = {charts['column_s']:g} s, times UTC" + (f"; marks: {legend}" if legend else "")
    return ["```text", *lines, "```", f"_{note}_", ""]


# --- sections ----------------------------------------------------------------------------------


def _header(data: dict) -> list[str]:
    run = data["run"]
    cluster = data["cluster"]
    critical = [d for d in data["diagnosis"] if d["severity"] == "critical"]
    deploy = next((v for v in reversed(cluster["vtasks"]) if v["name"] == "cluster_deploy"), None)
    if cluster["final_state"] == "ONLINE" and deploy and deploy["state"] == "COMPLETED" and not critical:
        status = "✅ SUCCESSFUL (cluster ONLINE, cluster_deploy completed)"
    elif critical or run["outcome"] == "failed" or (deploy and deploy["state"] in TASK_FAILED_STATES):
        status = f"❌ FAILED ({critical[0]['id'] if critical else 'see the findings'})"
    elif run["outcome"] in ("blocked", "aborted", "stopped", "prepared"):
        status = f"⏹️ {run['outcome'].upper()}" + (f" ({run['message']})" if run["message"] else "")
    elif cluster["final_state"]:
        status = f"⚠️ NOT FINISHED (last cluster state {cluster['final_state']})"
    else:
        status = "⚠️ UNKNOWN (no cluster state was recorded)"
    build = next((r["value"] for r in data["config"] if r["parameter"] == "VAST build"), "-")
    span = (f"{clock(run['first_sample'])} -> {clock(run['last_sample'])} UTC, "
            f"{duration((run['last_sample'] or 0) - (run['first_sample'] or 0))}" if run["samples"] else "none")
    day = ""
    if run["start"]:
        import time

        day = time.strftime("%Y-%m-%d", time.gmtime(run["start"]))
    lines = [
        "# VAST Data 5.4 Loopback Cluster - Deployment Analysis",
        "",
        f"**Date:** {day or '-'}  ",
        f"**Final Status:** {status}  ",
        f"**Run:** `{run['id']}` ({run['target'] or 'target not recorded'})  ",
        f"**Build:** {build}  ",
        f"**Samples:** {run['samples']:,} ({span})  ",
        "",
        "---",
        "",
    ]
    return lines


def _summary(data: dict) -> list[str]:
    t, cpu, mem, load, hb = data["timeline"], data["cpu"], data["memory"], data["load"], data["heartbeat"]
    lines = ["## Executive Summary", ""]
    critical = [d for d in data["diagnosis"] if d["severity"] == "critical"]
    if critical:
        lines += [f"**Key finding:** {critical[0]['cause']} **Remedy:** {critical[0]['remedy']}", ""]
    elif data["cluster"]["final_state"] == "ONLINE":
        lines += ["**Key finding:** no failure signature in this run; the cluster reached ONLINE.", ""]
    bullets = []
    if t["total_s"] is not None:
        bullets.append(f"Install: **{duration(t['total_s'])}** from the first install phase "
                       f"({clock(t['start'])}) to cluster_deploy completed ({clock(t['deploy_completed'])}).")
    if t["activation_s"] is not None:
        bullets.append(f"Activation (ACTIVATING -> ONLINE): **{duration(t['activation_s'])}**.")
    bullets += _reboot_test(data.get("reboot_test") or {})
    if mem["used_gib"]["max"] is not None:
        bullets.append(
            f"Memory: the guest's used peaked at **{_n(mem['used_gib']['max'])} GiB** of its "
            f"{_n(mem['total_gib'])} GiB{_vm_of(mem)}; "
            f"MemAvailable fell to **{_n(mem['available_gib']['min'])} GiB** at {clock(mem['available_gib']['t_min'])}"
            f" ({_stage_of(data, mem['available_gib']['t_min'])}).")
    if cpu["steal_pct"]["max"] is not None:
        bullets.append(f"CPU steal: max **{_n(cpu['steal_pct']['max'])} %** at {clock(cpu['steal_pct']['t_max'])} "
                       f"({_stage_of(data, cpu['steal_pct']['t_max'])}), mean {_n(cpu['steal_pct']['mean'])} %, "
                       f"p99 {_n(cpu['steal_pct'].get('p99'))} %.")
    if load["load1"]["max"] is not None:
        bullets.append(f"Load: 1-min peak **{_n(load['load1']['max'])}** at {clock(load['load1']['t_max'])} "
                       f"({_stage_of(data, load['load1']['t_max'])}).")
    if hb["measured"]:
        bullets.append(f"Scheduling gaps: longest **{_n(hb['max_gap_s'], 3)} s** between heartbeats "
                       f"(worst stall {_n(hb['max_stall_ms'], 0)} ms); over 1 s: {hb['gaps_over_1s']}, "
                       f"over 2 s: **{hb['gaps_over_2s']}**.")
    warnings = [d for d in data["diagnosis"] if d["severity"] != "critical"]
    bullets += [f"Warning: {d['cause']}" for d in warnings]
    lines += [f"- {b}" for b in bullets] + [""]
    left = data["run"].get("left_behind") or []
    if left:
        lines += ["**Left behind on the host:**", ""]
        lines += [f"- VM {md_text(v['vmid'])} '{md_text(v['name'])}' on {md_text(v['node'])}: {md_text(v['why'])}"
                  for v in left] + [""]
    lines += ["---", ""]
    return lines


def _reboot_test(test: dict) -> list[str]:
    """The summary's line on the seed checklist's "Test reboot and start_vms.sh"."""
    status = test.get("status")
    if status == "passed":
        return [f"Reboot and start_vms.sh: **passed**, the cluster was ONLINE again "
                f"{duration(test.get('online_after_s'))} after the reboot."]
    if status == "failed":
        return [f"Reboot and start_vms.sh: **failed**: {test.get('problem')}."]
    if status == "off":
        return ["Reboot and start_vms.sh: not run (`vast.reboot_test: false`)."]
    return []


def _configuration(data: dict) -> list[str]:
    lines = ["## Environment Configuration", ""]
    if not data["config"]:
        return lines + ["_No configuration was recorded in this run._", ""]
    return lines + _table(["Parameter", "Value", "Source"],
                          [[r["parameter"], r["value"], r["source"]] for r in data["config"]])


def _timeline(data: dict) -> list[str]:
    t = data["timeline"]
    lines = ["## Timeline", ""]
    rows: list[tuple[float, str, str]] = []
    retried = t.get("attempts", 1) > 1
    for phase in t["phases"]:
        status = "" if phase["status"] == "done" else f" ({phase['status']})"
        attempt = f" [attempt {phase['attempt']}]" if retried else ""
        rows.append((phase["start"], f"{phase['title']}{attempt}{status}", duration(phase["duration_s"])))
    for milestone in t["milestones"]:
        rows.append((milestone["t"], milestone["event"], ""))
    for state in data["cluster"]["states"]:
        rows.append((state["t"], f"State: **{state['state']}**", duration(state["duration_s"])))
    for task in data["cluster"]["vtasks"]:
        runtime = f"runtime {task['runtime_s']:.2f} s" if task["runtime_s"] is not None else ""
        rows.append((task["t"], f"Task {task['name']} ({task['task_id']}) {task['state']}", runtime))
    for container in data["containers"]:
        if container["name"] in ("vast_vms", "registry") or container["name"].startswith("vast_platform"):
            rows.append((container["first_seen"], f"container {container['name']} first seen", ""))
    restart = data.get("reboot_test") or {}
    if restart.get("t") is not None:
        came_back = "ONLINE again" if restart["status"] == "passed" else "not ONLINE"
        rows.append((restart["t"], f"After the reboot, {restart['how']}: cluster {came_back}",
                     duration(restart.get("online_after_s"))))
    for rollback in data["faults"]["rollbacks"]:
        rows.append((rollback["t"], f"Rolled back to snapshot {rollback['snapshot']}", ""))
    for remedy in data["faults"]["remedies"]:
        rows.append((remedy["t"], f"Remedy {remedy['id']} applied: {json.dumps(remedy['changes'])}", ""))
    for item in data["diagnosis"] + data["alerts"]:
        if item["t"] is not None and item["severity"] == "critical":
            rows.append((item["t"], f"❗ {item['id']}: {item['cause'][:90]}", ""))
    if not rows:
        return lines + ["_No phases, cluster states or tasks were recorded._", ""]
    rows.sort(key=lambda r: r[0])
    lines += _table(["Time (UTC)", "Event", "Duration"], [[clock(r[0]), r[1], r[2]] for r in rows])
    if t["total_s"] is not None:
        lines.append(f"**Total: {duration(t['total_s'])}** (`timeline.total_s` = {t['total_s']:.0f} s), from the "
                     f"first install phase at {clock(t['start'])} to cluster_deploy completed at "
                     f"{clock(t['deploy_completed'])}.")
        if t["install_script_s"] is not None:
            lines.append(f"The install script's phases ended at {clock(t['install_end'])} "
                         f"({duration(t['install_script_s'])}).")
        lines.append("For reference, the field report's \"32 min 41 s\" runs from Phase 1 (18:32:13) to 19:04:54, "
                     "the end of its cluster-creation phase, 6 s after its cluster_deploy completed (19:04:48); "
                     "counted to cluster_deploy, that run took 32 min 35 s.")
        lines.append("")
    durations = [("Bootstrap", t["bootstrap_s"]), ("INIT -> ACTIVATING", t["init_to_activating_s"]),
                 ("ACTIVATING -> ONLINE", t["activation_s"]), ("ONLINE -> cluster_deploy completed",
                                                                t["online_to_deploy_s"])]
    known = [[name, duration(value)] for name, value in durations if value is not None]
    if known:
        lines += ["### Key durations", ""] + _table(["Span", "Duration"], known)
    if t["phases"]:
        lines += ["### Phase durations", ""]
        lines += _table(["Phase", "Group", "Attempt", "Start", "End", "Duration", "Status"],
                        [[p["title"], p["group"], p["attempt"], clock(p["start"]), clock(p["end"]),
                          duration(p["duration_s"]), p["status"]] for p in t["phases"]])
        if retried:
            lines += [f"The install ran {t['attempts']} times (a rollback to the pre-install snapshot starts a new "
                      "attempt); the totals above are those of the attempt that completed.", ""]
    return lines + ["---", ""]


def _cpu(data: dict) -> list[str]:
    cpu = data["cpu"]
    steal = cpu["steal_pct"]
    lines = ["## Performance Analysis", "", "### CPU Steal (Hypervisor Contention)", ""]
    if steal["max"] is None:
        return lines + ["_No CPU samples._", ""]
    rows = [
        ["Max %steal", f"{_n(steal['max'])} %", f"at {clock(steal['t_max'])} ({_stage_of(data, steal['t_max'])})"],
        ["Mean %steal", f"{_n(steal['mean'])} %", f"over {steal['n']:,} samples"],
        ["p99 %steal", f"{_n(steal.get('p99'))} %", ""],
        ["Samples with steal > 0", _n(steal["samples_over_0"]), f"{_n(steal['pct_samples_over_0'])} % of samples"],
        ["Seconds with steal > 10 %", _n(steal["seconds_over_10"]), ""],
    ]
    if cpu.get("steal_max_cpu_pct"):
        rows.append(["Max steal on one vCPU", f"{_n(cpu['steal_max_cpu_pct']['max'])} %",
                     f"at {clock(cpu['steal_max_cpu_pct']['t_max'])}"])
    lines += _table(["Metric", "Value", "When"], rows)
    lines += ["CPU steal over time (max per column, %):", ""] + _chart(data, "steal_max", digits=1)
    lines += ["### CPU Utilization by Stage", ""]
    lines += _table(["Stage", "From", "To", "Max %user", "Max %sys", "Max %iowait", "Max %steal", "Mean %steal"],
                    [[r["stage"], clock(r["start"]), clock(r["end"]), _n(r.get("user_max")), _n(r.get("sys_max")),
                      _n(r.get("iowait_max")), _n(r.get("steal_max")), _n(r.get("steal_mean"))]
                     for r in cpu["stages"]])
    return lines


def _load(data: dict) -> list[str]:
    load = data["load"]
    lines = ["### Load Average", ""]
    if load["load1"]["max"] is None:
        return lines + ["_No load samples._", ""]
    lines += _table(["Stage", "From", "To", "Max 1-min", "Max 5-min", "Max 15-min"],
                    [[r["stage"], clock(r["start"]), clock(r["end"]), _n(r.get("load1_max")), _n(r.get("load5_max")),
                      _n(r.get("load15_max"))] for r in load["stages"]])
    ncpu = next((r["value"] for r in data["config"] if r["parameter"].startswith("vCPUs")), None)
    per = ""
    if ncpu and str(ncpu).isdigit() and int(ncpu):
        per = f" With {ncpu} vCPUs that is {load['load1']['max'] / int(ncpu):.1f} runnable or waiting tasks per vCPU."
    lines += [f"Peak 1-min load **{_n(load['load1']['max'])}** at {clock(load['load1']['t_max'])} "
              f"({_stage_of(data, load['load1']['t_max'])}); peak 5-min {_n(load['load5']['max'])}, "
              f"15-min {_n(load['load15']['max'])}; most runnable tasks at once {_n(load['runnable']['max'], 0)}.{per}", ""]
    lines += ["1-min load over time (max per column):", ""] + _chart(data, "load1_max", digits=0)
    return lines


def _vm_of(mem: dict) -> str:
    """', the MemTotal of a 120 GiB VM' when the run knows the VM's size."""
    vm = mem.get("vm_gib")
    return f", the MemTotal of a {vm:g} GiB VM" if vm else " (MemTotal)"


def _memory(data: dict) -> list[str]:
    mem = data["memory"]
    lines = ["### Memory Metrics", ""]
    if mem["used_gib"]["max"] is None:
        lines += ["_No memory samples._", ""]
    else:
        lines += [f"All figures are the guest's: {_n(mem['total_gib'])} GiB{_vm_of(mem)}. "
                  "Used (= MemTotal - MemAvailable) peaked at "
                  f"**{_n(mem['used_gib']['max'])} GiB** at {clock(mem['used_gib']['t_max'])}; MemAvailable fell to "
                  f"**{_n(mem['available_gib']['min'])} GiB** at {clock(mem['available_gib']['t_min'])} "
                  f"({_stage_of(data, mem['available_gib']['t_min'])}). OOM kills counted by the kernel: "
                  f"{mem['oom_kills']}.", "", "#### Memory Timeline", ""]
        lines += _table(["Stage", "From", "To", "Used (GiB)", "Available (GiB)"],
                        [[r["stage"], clock(r["start"]), clock(r["end"]),
                          f"{_n(r.get('used_min'), 1)} - {_n(r.get('used_max'), 1)}",
                          f"{_n(r.get('available_min'), 1)} - {_n(r.get('available_max'), 1)}"]
                         for r in mem["stages"]])
        lines += [f"Memory used over time (GiB, max per column; the dotted line is {_n(mem['total_gib'], 1)} GiB "
                  "less 4 GiB, where MemAvailable gets low and the OOM killer comes close):", ""]
        lines += _chart(data, "mem_used_max", y_max=mem["total_gib"], digits=1,
                        threshold=(mem["total_gib"] or 0) - 4.0)
    lines += ["#### Container Memory Usage", ""]
    containers = data["containers"]
    if not containers:
        return lines + ["_No container statistics._", ""]
    rows = [[c["name"], f"{_n(c['last_gib'])} GiB", _n(c["pct_of_total_last"], 1, "%"),
             f"{_n(c['peak_gib'])} GiB at {clock(c['t_peak'])}", clock(c["first_seen"]), clock(c["last_seen"])]
            for c in containers]
    last_total = sum(c["last_gib"] or 0 for c in containers if c["last_seen"] == max(x["last_seen"] for x in containers))
    pct = sum(c["pct_of_total_last"] or 0 for c in containers if c["last_seen"] == max(x["last_seen"] for x in containers))
    rows.append(["**Total (last sample)**", f"**{last_total:.2f} GiB**", f"**{pct:.1f}%**", "", "", ""])
    return lines + _table(["Container", "Last", "% of total", "Peak", "First seen", "Last seen"], rows)


def _disk(data: dict) -> list[str]:
    disk = data["disk"]
    lines = ["### I/O Metrics", "", "#### Disk Latency", ""]
    if not disk["devices"]:
        return lines + ["_No disk samples._", ""]
    rows = []
    for name, stats in disk["devices"].items():
        def mx(key: str, scale: float = 1.0, digits: int = 2, stats: dict = stats) -> str:
            value = stats.get(key, {}).get("max")
            return "-" if value is None else f"{value / scale:,.{digits}f}"
        rows.append([name, mx("r_await"), mx("w_await"), mx("r_s", digits=0), mx("w_s", digits=0),
                     mx("rkb_s", 1024), mx("wkb_s", 1024), mx("util", digits=1)])
    lines += _table(["Device", "Max r_await (ms)", "Max w_await (ms)", "Max r/s", "Max w/s", "Max read MiB/s",
                     "Max write MiB/s", "Max %util"], rows)
    r, w = disk["r_await_ms"], disk["w_await_ms"]
    lines += [f"Worst read latency {_n(r['max'])} ms ({r['device']}, {clock(r['t_max'])}), worst write latency "
              f"{_n(w['max'])} ms ({w['device']}, {clock(w['t_max'])}).", ""]
    return lines


def _gaps(data: dict) -> list[str]:
    hb = data["heartbeat"]
    lines = ["### Scheduling Gap Analysis", ""]
    if not hb["measured"]:
        return lines + ["_No heartbeat or stall-detector data in this run._", ""]
    lines += [f"- Source: {hb.get('source', '-')}" + (f", {hb['ticks']:,} ticks" if hb.get("ticks") else ""),
              f"- Heartbeat interval: {_n(hb['interval_s'], 1)} s" if hb["interval_s"] else "- Heartbeat interval: "
              "continuous (stall detector)",
              f"- Longest gap between heartbeats: **{_n(hb['max_gap_s'], 3)} s** (a stall of "
              f"{_n(hb['max_stall_ms'], 0)} ms beyond the interval, at {clock(hb['t_max'])})",
              f"- Stalls of 50 ms or more: {hb['stalls']}; over 1 s: {hb['gaps_over_1s']}; "
              f"**over 2 s: {hb['gaps_over_2s']}**", ""]
    lines += _table(["Stall length", *[f">= {k} ms" for k in hb["histogram_ms"]]],
                    [["count", *hb["histogram_ms"].values()]])
    if hb["worst"]:
        lines += ["Worst stalls: " + ", ".join(f"{w['length_ms']:.0f} ms at {clock(w['t'])}" for w in hb["worst"]), ""]
    for port in data["network"]:
        lines += [f"Cluster port {port['port']}: first connection established at {clock(port['first_established'])}; "
                  f"at most {port['max_established']} established; largest send queue {port['send_q_max']:,} B, "
                  f"receive queue {port['recv_q_max']:,} B.", ""]
    return lines + ["---", ""]


def _times(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _fault_summary(faults: dict, gaps: list[dict]) -> list[str]:
    """The section in a few sentences: what struck, what came back, what is missing."""
    summary, counts = faults.get("summary") or {}, faults["counts"]
    sentences = []
    injected = faults.get("injected")
    if injected and injected["count"]:
        kinds = ", ".join(f"{n} {kind}" for kind, n in injected["by_kind"].items())
        sentences.append(f"The target injected {_times(injected['count'], 'fault')} on purpose ({kinds}).")
    episodes, recovered = summary.get("episodes", 0), summary.get("recovered", 0)
    if episodes:
        outcome = ("every one recovered" if recovered == episodes
                   else f"{recovered} recovered, {episodes - recovered} did not (see below)")
        sentences.append(f"{_times(episodes, 'operation')} hit a fault and {'was' if episodes == 1 else 'were'} "
                         f"retried ({_times(counts['retries'], 'retry', 'retries')}); {outcome}.")
    outages = summary.get("outages", 0)
    if outages:
        longest = summary.get("longest_outage_s")
        back = sum(1 for o in faults.get("outages", []) if o.get("end") is not None)
        sentences.append(f"The SSH connection to the guest dropped {_times(outages, 'time')} and came back "
                         + ("every time" if back == outages else f"{back} times")
                         + (f" (longest outage {longest:.1f} s)." if longest is not None else "."))
    if gaps:
        sentences.append(f"The monitor was not sampling for {duration(summary.get('gap_s'))} in "
                         f"{_times(len(gaps), 'stretch', 'stretches')}: shown as gaps, never interpolated.")
    if counts["rollbacks"] or counts["remedies"]:
        sentences.append(f"{_times(counts['rollbacks'], 'rollback')} and {_times(counts['remedies'], 'remedy', 'remedies')}"
                         " were applied (below).")
    return [" ".join(sentences), ""] if sentences else []


def _faults(data: dict) -> list[str]:
    faults, gaps = data["faults"], data["sampling_gaps"]
    counts = faults["counts"]
    lines = ["## Faults and Recoveries", ""]
    injected = (faults.get("injected") or {}).get("count", 0)
    if not any(counts.values()) and not injected:
        return lines + ["No retries, reconnections, rollbacks or sampling gaps were recorded.", "", "---", ""]
    lines += _fault_summary(faults, gaps)
    episodes = faults.get("episodes")
    if episodes:
        lines += ["Operations that hit a fault (retries folded together, backoff waited in all):", ""]
        lines += _table(["Time", "Operation", "Retries", "Failed with", "Backoff", "Outcome"],
                        [[clock(e["start"]), e["operation"], e["retries"], e["error"], f"{e['waited_s']:.1f} s",
                          f"recovered at {clock(e['end'])} (attempt {e['attempts']})" if e["outcome"] == "recovered"
                          else "**not recovered**"] for e in episodes])
    elif faults["retries"]:  # a report of data without episodes (older analysis data)
        lines += _table(["Time", "Operation", "Attempt", "Error", "Retry in"],
                        [[clock(r["t"]), r["operation"], r["attempt"], r["error"], f"{r['delay_s']:.1f} s"]
                         for r in faults["retries"]])
    outages = faults.get("outages")
    if outages:
        lines += ["Guest SSH connection outages (the detached install carried on; commands were sent again):", ""]
        lines += _table(["Lost", "Back", "Down", "Reason", "Attempts"],
                        [[clock(o["start"]), clock(o["end"]) if o["end"] is not None else "**not back**",
                          f"{o['down_s']:.1f} s" if o["down_s"] is not None else "-", o["reason"] or "-",
                          o["attempts"] if o["attempts"] is not None else "-"] for o in outages])
    if faults["rollbacks"] or faults["remedies"]:
        lines += _table(["Time", "Rollback / remedy", "Detail"],
                        [[clock(r["t"]), "rolled back", f"VM {r['vmid']} to {r['snapshot']}"] for r in faults["rollbacks"]]
                        + [[clock(r["t"]), f"remedy {r['id']}", f"{json.dumps(r['changes'])} (attempt {r['attempt']})"]
                           for r in faults["remedies"]])
    if gaps:
        lines += ["Sampling gaps (the monitor was not sampling; never interpolated):", ""]
        lines += _table(["From", "To", "Length", "Reason"],
                        [[clock(g["start"]), clock(g["end"]), duration(g["duration_s"]), g["reason"]] for g in gaps])
    if injected:
        lines += [f"_Injected faults: {injected} (the target's FaultInjected events); match them with the rows "
                  "above by time._", ""]
    return lines + ["---", ""]


def _tuning(data: dict) -> list[str]:
    lines = ["## Workarounds and Fixes Applied", ""]
    if data["tuning"]:
        lines += _table(["Tuning", "Expected", "Observed", "OK", "After reboot", "Persisted"],
                        [[t["id"], t["expected"], t["observed"], "✅" if t["ok"] else "❌",
                          "yes" if t["after_reboot"] else "no",
                          "-" if t["persisted"] is None else ("yes" if t["persisted"] else "no")]
                         for t in data["tuning"]])
        bad = [t for t in data["tuning"] if not t["ok"]]
        lines += [f"{len(bad)} tuning check(s) failed: " + ", ".join(t["id"] for t in bad) if bad else
                  "Every tuning check passed.", ""]
    else:
        lines += ["_No tuning checks were recorded in this run_ (imported traces never carry them; the field "
                  "report lists Docker CE, qemu-guest-agent, virtio drivers in the initramfs, THP off, mq-deadline "
                  "and sysctls as applied by hand).", ""]
    changes = data.get("host_changes") or []
    if changes:
        lines += ["### Changes to the host beyond the VM", ""]
        lines += _table(["Change", "Why", "Made", "Undone"],
                        [[c["what"], c.get("why", ""), clock(c["t"]),
                          "kept (proxmox.keep_host_changes)" if c.get("kept") else
                          f"{clock(c['reverted'])}: {c['revert_note']}" if c.get("reverted") is not None else
                          "**not yet**: resume the run to revert it"] for c in changes])
    if data["preflight"]:
        lines += ["### Preflight", ""]
        lines += _table(["Check", "Expected", "Observed", "OK", "Severity"],
                        [[p.get("title") or p.get("id"), p.get("expected", ""), p.get("observed", ""),
                          "✅" if p.get("ok") else "❌", p.get("severity", "")] for p in data["preflight"]])
    return lines + ["---", ""]


def _findings(data: dict) -> list[str]:
    lines = ["## Findings and Recommendations", ""]
    if not data["diagnosis"]:
        lines += ["No failure signature was found (OOM, P653 PANIC, stalls with rising steal, collapsed activation, "
                  "failed deploy, stuck phase).", ""]
    for item in data["diagnosis"]:
        badge = "❌ critical" if item["severity"] == "critical" else "⚠️ warning"
        lines += [f"### {badge}: `{item['id']}`", "", f"**Cause:** {item['cause']}", ""]
        if item.get("remedy"):
            lines += [f"**Remedy:** {item['remedy']}" + (f" Machine-applicable: `{json.dumps(item['changes'])}`."
                                                        if item.get("changes") else ""), ""]
        if item.get("evidence"):
            lines += ["**Evidence:**", ""]
            lines += [f"- {clock(e['t']) + ' ' if e.get('t') else ''}[{e.get('source', '')}] {e.get('text', '')}"
                      for e in item["evidence"]]
            lines.append("")
    if data["alerts"]:
        lines += ["### Alerts raised during the run", ""]
        lines += _table(["Time", "Severity", "Alert", "Message"],
                        [[clock(a["t"]), a["severity"], a["id"], a["cause"]] for a in data["alerts"]])
    if data["kernel"]:
        lines += ["### Kernel and VAST messages that matched a signature", ""]
        lines += _table(["Time", "Match", "Source", "Line"],
                        [[clock(k["t"]), k["match"], k["source"], k["text"][:160]] for k in data["kernel"]])
    if data.get("guest_record"):
        lines += ["### The guest's own record, read after the fact", "",
                  "Lines from `record:` sources were read from the guest (kernel log since boot, VAST's logs), "
                  "not streamed by the monitor: they happened while nothing watched, or before it caught up.", ""]
        lines += _table(["Time", "Read"], [[clock(r["t"]), r["text"]] for r in data["guest_record"]])
    return lines + ["---", ""]


def _compare(data: dict) -> list[str]:
    lines = ["## The Field Report's Prose Beside This Run's Data", "",
             "The field report (VAST_5.4_Deployment_Analysis.md) states these figures for its successful run. "
             "Where they differ from the raw data, this report follows the data.", ""]
    rows = []
    for row in data["compare"]:
        value = row["data"]
        if row["unit"] == "s" and isinstance(value, int | float):
            shown = duration(value)
        else:
            shown = _n(value, 2, row["unit"] if row["unit"] in ("%", "ms", "GiB") else "")
        rows.append([row["metric"], row["field_report"], shown])
    lines += _table(["Metric", "Field report (prose)", "This run (data)"], rows)
    return lines + ["---", ""]


def _statistics(data: dict) -> list[str]:
    t, mem, cpu, load, hb = data["timeline"], data["memory"], data["cpu"], data["load"], data["heartbeat"]
    rows = [
        ["Install time (first phase -> cluster_deploy completed)", duration(t["total_s"])],
        ["Activation time (ACTIVATING -> ONLINE)", duration(t["activation_s"])],
        ["Peak memory used in the guest", f"{_n(mem['used_gib']['max'])} GiB"],
        ["Lowest MemAvailable in the guest", f"{_n(mem['available_gib']['min'])} GiB"],
        ["Peak load average (1 / 5 / 15 min)",
         f"{_n(load['load1']['max'])} / {_n(load['load5']['max'])} / {_n(load['load15']['max'])}"],
        ["Max CPU steal", f"{_n(cpu['steal_pct']['max'])} %"],
        ["Max %user / %sys", f"{_n(cpu['user_pct']['max'])} % / {_n(cpu['sys_pct']['max'])} %"],
        ["Max r_await / w_await", f"{_n(data['disk']['r_await_ms']['max'])} ms / {_n(data['disk']['w_await_ms']['max'])} ms"],
        ["Longest heartbeat gap", f"{_n(hb['max_gap_s'], 3)} s"],
        ["Scheduling gaps > 2 s", _n(hb["gaps_over_2s"]) if hb["measured"] else "-"],
        ["Diagnoses (critical / warning)",
         f"{sum(d['severity'] == 'critical' for d in data['diagnosis'])} / "
         f"{sum(d['severity'] != 'critical' for d in data['diagnosis'])}"],
        ["Final cluster state", data["cluster"]["final_state"] or "-"],
    ]
    return ["## Summary Statistics", ""] + _table(["Metric", "Value"], rows) + ["---", ""]


def _sources(data: dict) -> list[str]:
    lines = ["## Data Sources", ""]
    skipped = data.get("skipped") or {}
    if skipped.get("count"):
        lines += [f"Lines skipped while reading ({skipped['count']:,}; not counted in any figure):", ""]
        lines += [f"- {skipped_line(row)}" for row in skipped["lines"]]
        if skipped["count"] > len(skipped["lines"]):
            lines.append(f"- ... and {skipped['count'] - len(skipped['lines']):,} more")
        lines.append("")
    imported = data.get("imported")
    if imported:
        lines += [f"Imported from `{data['run']['imported_from']}`:", ""]
        lines += _table(["File", "Kind", "Records", "Skipped", "From", "To", "Note"],
                        [[f["name"], f["kind"], _n(f["records"]), _n(f["skipped"]), clock(f["first"]), clock(f["last"]),
                          f["note"]] for f in imported["files"]])
        lines += [f"- {note}" for note in imported["notes"]] + [""]
    else:
        lines += [f"Run directory `{data['run']['path']}`: {data['run']['samples']:,} samples, "
                  f"{len(data['timeline']['phases'])} steps.", ""]
    if data["missing"]:
        lines += ["What this run does not have:", ""] + [f"- {m}" for m in data["missing"]] + [""]
    return lines


def render(data: dict) -> str:
    """The report as Markdown."""
    data = _safe(data)  # type: ignore[assignment]
    lines: list[str] = []
    for section in (_header, _summary, _configuration, _timeline, _cpu, _load, _memory, _disk, _gaps, _faults,
                    _tuning, _findings, _compare, _statistics, _sources):
        lines += section(data)
    lines += ["", f"*Generated by vast-loopback {VERSION} from the run's raw events and samples.*", ""]
    return "\n".join(lines)


def save_report(run: RunDir | str | Path, output: Path | None = None) -> tuple[dict, Path]:
    """Analyse a run and write its report (RUN_DIR/report.md, or `output`) through the private
    writer: the one way a report is written (the CLI, the finish step, the result screen)."""
    run = run if isinstance(run, RunDir) else RunDir.open(run)
    data = analyse(run)
    path = output or run.path / REPORT
    write_private(path, render(data))
    return data, path


def write_report(run_dir: str, json_out: bool = False, output: str | None = None) -> int:
    """Write report.md (or `output`); with `json_out`, print the analysis as JSON on stdout."""
    run = RunDir.open(run_dir)
    if output and not Path(output).parent.is_dir():
        raise BadInput(f"{Path(output).parent}: no such folder for the report",
                       hint="give --output a path in an existing folder")
    try:
        data, path = save_report(run, Path(output) if output else None)
    except OSError as exc:
        raise BadInput(f"cannot write the report to {output or run.path / REPORT}: {exc.strerror or exc}",
                       hint="give --output a path you can write to") from None
    if run.skipped:
        print(f"vast-loopback: skipped {len(run.skipped):,} line(s) that are not what vast-loopback writes:\n  "
              + "\n  ".join(run.skipped.said()), file=sys.stderr)
    data["report_path"] = str(path)
    if json_out:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        status = data["cluster"]["final_state"] or "no cluster state"
        critical = [d["id"] for d in data["diagnosis"] if d["severity"] == "critical"]
        print(f"wrote {path} ({status}" + (f"; diagnosis: {', '.join(critical)}" if critical else "") + ")")
    return 0
