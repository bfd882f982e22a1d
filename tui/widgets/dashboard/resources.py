"""The guest's resources over the whole run: memory against the VM's size (the OOM line on top),
CPU steal with user/sys, and load averages against the vCPU count. One column per time step of the
grid (tui/series.py); a column with no sample stays a gap."""

from __future__ import annotations

import math

from backend.analysis.charts import Line, axis_row, column_rows, spark_row
from backend.analysis.diagnose import MEM_CRITICAL_GIB, MEM_LOW_GIB, STEAL_SUSTAINED_PCT
from tui.series import Window
from tui.session import RunSession
from tui.widgets.dashboard.pane import Pane, clock

LABEL = 5  # right-hand axis labels: " 117G"
SHORT = {"user": "usr", "sys": "sys", "load5": "5m", "load15": "15m"}

NO_SAMPLES = (("no samples yet", "dim"),)
WHY_NOT_YET = (("(the monitor starts with the guest)", "dim"),)


def memory_style(available_gib: float | None) -> str:
    if available_gib is None:
        return ""
    if available_gib < MEM_CRITICAL_GIB:
        return "bold red"
    if available_gib < MEM_LOW_GIB:
        return "yellow"
    return "green"


def steal_style(steal: float | None) -> str:
    if steal is None:
        return ""
    if steal >= 2 * STEAL_SUSTAINED_PCT:
        return "bold red"
    if steal >= STEAL_SUSTAINED_PCT:
        return "red"
    if steal >= STEAL_SUSTAINED_PCT / 2:
        return "yellow"
    return "green"


def labelled(rows: list[Line], top: str, bottom: str = "0") -> list[Line]:
    """The chart's rows with the top and bottom of its scale on the right."""
    out = []
    for number, row in enumerate(rows):
        label = top if number == 0 else (bottom if number == len(rows) - 1 else "")
        out.append(row + ((" " + label.rjust(LABEL - 1), "dim"),) if label else row)
    return out


def chart_window(session: RunSession, width: int) -> Window | None:
    series = session.series["mem_used"] if session.series["mem_used"].first is not None else session.series["steal"]
    if series.first is None or series.last is None:
        return None
    return Window.covering(series.first, series.last, max(1, width - LABEL))


def chart_height(height: int, header: int, extra: int) -> tuple[int, bool]:
    """Rows left for the chart, and whether a time axis fits under it."""
    axis = height - header - extra >= 5
    return max(1, height - header - extra - (1 if axis else 0)), axis


def vm_memory_gib(session: RunSession) -> float | None:
    """The VM's RAM (Proxmox's `memory`, MiB) from the config the run applied, in GiB."""
    memory = str(session.vm_config.get("memory", "")).split(",")[0]
    return int(memory) / 1024 if memory.isdigit() else None


class MemoryPane(Pane):
    """The guest's memory (MemTotal, used, available: its units) against the VM's size in the title."""

    PANE_TITLE = "Guest memory"

    def lines(self, session: RunSession, width: int, height: int) -> list[Line]:
        vm = vm_memory_gib(session)
        title = f"{self.PANE_TITLE} · VM {vm:g} GiB" if vm else self.PANE_TITLE
        if self.border_title != title:
            self.border_title = title
        window = chart_window(session, width)
        mem = session.latest.get("mem") or {}
        if window is None or not session.mem_total or "available" not in mem:
            return [NO_SAMPLES, WHY_NOT_YET]
        total = session.mem_total / 2**30
        used, available = mem.get("used", 0) / 2**30, mem.get("available", 0) / 2**30
        low = session.available_min
        wide = width >= 52
        head: Line = (("used " if wide else "", "dim"), (f"{used:.1f}", "bold"), (f"/{total:.1f} GiB", "dim"),
                      (" avail ", "dim"), (f"{available:.1f}", "bold " + memory_style(available)),
                      (" min ", "dim"), (f"{(low.value or 0) / 2**30:.1f}", memory_style((low.value or 0) / 2**30)),
                      (f" at {clock(low.t)}" if wide else "", "dim"))
        rows, axis = chart_height(height, 2, 0)
        columns = window.count
        used_cols = window.read(session.series["mem_used"], "max")
        avail_cols = window.read(session.series["mem_available"], "min")
        chart = column_rows(used_cols, columns, rows, total,
                            style_of=lambda i: memory_style(avail_cols[i]))
        oom: Line = (("┈" * columns, "red"), (" OOM", "bold red"))
        out = [head, oom, *labelled(chart, f"{total:.0f}G")]
        if axis:
            out.append(axis_row(window.start, window.step, columns, clock))
        return out


class CpuPane(Pane):
    PANE_TITLE = "CPU steal"

    def lines(self, session: RunSession, width: int, height: int) -> list[Line]:
        window = chart_window(session, width)
        cpu = session.latest.get("cpu") or {}
        if window is None or "steal" not in cpu:
            return [NO_SAMPLES, WHY_NOT_YET]
        steal, peak = float(cpu.get("steal", 0.0)), session.steal_max
        head: Line = (("steal ", "dim"), (f"{steal:.1f} %", "bold " + steal_style(steal)),
                      (" max ", "dim"), (f"{peak.value or 0:.1f} %", steal_style(peak.value)),
                      (f" at {clock(peak.t)}" if width >= 52 else "", "dim"),
                      (f"  usr {cpu.get('user', 0):.0f} % sys {cpu.get('sys', 0):.0f} %" if width >= 52 else "",
                       "dim"))
        sparks = 2 if height >= 7 else 0
        rows, axis = chart_height(height, 1, sparks)
        columns = window.count
        steal_cols = window.read(session.series["steal"], "max")
        top = max(20.0, math.ceil((peak.value or 0.0) / 10.0) * 10.0)
        chart = column_rows(steal_cols, columns, rows, top, style_of=lambda i: steal_style(steal_cols[i]),
                            threshold=STEAL_SUSTAINED_PCT, threshold_style="yellow")
        out = [head, *labelled(chart, f"{top:.0f}%")]
        if sparks:
            for key, style in (("user", "cyan"), ("sys", "magenta")):
                values = window.read(session.series[key], "mean")
                out.append(spark_row(values, columns, 0.0, 100.0, style) + ((" " + SHORT[key].rjust(LABEL - 1), "dim"),))
        if axis:
            out.append(axis_row(window.start, window.step, columns, clock))
        return out


class LoadPane(Pane):
    PANE_TITLE = "Load"

    def lines(self, session: RunSession, width: int, height: int) -> list[Line]:
        window = chart_window(session, width)
        load = session.latest.get("load")
        if window is None or not isinstance(load, list | tuple) or len(load) < 3:
            return [NO_SAMPLES, WHY_NOT_YET]
        vcpus = session.vcpus or 0
        over = vcpus and load[0] > vcpus
        head: Line = (("load ", "dim"), (f"{load[0]:.1f}", "bold red" if over else "bold"),
                      (f" {load[1]:.1f} {load[2]:.1f}", ""),
                      (f"  on {vcpus} vCPUs" if vcpus else "", "dim"),
                      (f"  max {session.load1_max.value or 0:.1f}", "dim"))
        sparks = 2 if height >= 7 else 0
        rows, axis = chart_height(height, 1, sparks)
        columns = window.count
        load_cols = window.read(session.series["load1"], "max")
        top = max(float(vcpus) * 1.5, (session.load1_max.value or 0.0) * 1.1, 1.0)
        chart = column_rows(load_cols, columns, rows, top,
                            style_of=lambda i: "red" if vcpus and (load_cols[i] or 0) > vcpus else "cyan",
                            threshold=float(vcpus) if vcpus else None, threshold_style="yellow")
        out = [head, *labelled(chart, f"{top:.0f}")]
        if sparks:
            for key in ("load5", "load15"):
                values = window.read(session.series[key], "mean")
                out.append(spark_row(values, columns, 0.0, top, "blue") + ((" " + SHORT[key].rjust(LABEL - 1), "dim"),))
        if axis:
            out.append(axis_row(window.start, window.step, columns, clock))
        return out
