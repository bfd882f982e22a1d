"""The guest's preparation as it goes: every tuning read back from the guest (`TuningChecked`: id,
expected, observed, ok, and again after the reboot) and the preflight checklist (`PreflightChecked`)
as tables.

`TuningPane` and `PreflightPane` are the details screen's full tables; `PreparationPane` is the
dashboard's compact view of both while the guest is prepared (before the monitor has samples, the
memory and CPU panes have nothing to show and this pane takes their place)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from backend.analysis.charts import Line
from backend.model.sizing import severity_rank
from tui.session import RunSession
from tui.widgets.dashboard.pane import Pane

OK, BAD, WARN = ("✓ ", "green"), ("✖ ", "bold red"), ("! ", "bold yellow")
PREFIXES = ("sysctl:", "limits:")  # dropped from ids in narrow panes: the name says enough


@dataclass(frozen=True)
class TuningRow:
    id: str
    expected: str
    observed: str
    ok: bool
    after: dict | None  # the reading after the reboot, once verified

    @property
    def final_ok(self) -> bool:
        return self.ok if self.after is None else bool(self.after.get("ok"))


def tuning_rows(session: RunSession) -> list[TuningRow]:
    """One row per tuning id, in the order they were first checked, with the after-reboot reading."""
    readings = session.state.tuning
    rows: list[TuningRow] = []
    for key, reading in readings.items():
        if key.endswith("@reboot"):
            continue
        rows.append(TuningRow(key, str(reading.get("expected", "")), str(reading.get("observed", "")),
                              bool(reading.get("ok")), readings.get(f"{key}@reboot")))
    for key, reading in readings.items():  # verified after the reboot without a reading before (resume)
        base = key.removesuffix("@reboot")
        if key.endswith("@reboot") and base not in readings:
            rows.append(TuningRow(base, str(reading.get("expected", "")), str(reading.get("observed", "")),
                                  bool(reading.get("ok")), reading))
    return rows


def tuning_summary(rows: list[TuningRow]) -> Line:
    good = sum(row.ok for row in rows)
    verified = [row for row in rows if row.after is not None]
    parts: list[tuple[str, str]] = [(f"{good}/{len(rows)} ok", "green" if good == len(rows) else "bold red")]
    if verified:
        kept = sum(bool(row.after.get("ok")) for row in verified if row.after is not None)
        parts.append((" · after reboot ", "dim"))
        parts.append((f"{kept}/{len(verified)}", "green" if kept == len(verified) else "bold red"))
    else:
        parts.append((" · reboot pending", "dim"))
    return tuple(parts)


def short_id(tuning_id: str) -> str:
    for prefix in PREFIXES:
        if tuning_id.startswith(prefix):
            return tuning_id[len(prefix):]
    return tuning_id


def reboot_mark(row: TuningRow) -> tuple[str, str]:
    if row.after is None:
        return (" ↻·", "dim")
    return (" ↻✓", "green") if row.after.get("ok") else (" ↻✖", "bold red")


def tuning_line(row: TuningRow, width: int) -> Line:
    """Narrow: mark, id, observed, and whether it survived the reboot."""
    observed = row.after.get("observed", row.observed) if row.after else row.observed
    observed = str(observed)[:14]
    room = max(4, width - 2 - len(observed) - 1 - 3)
    name = short_id(row.id)
    name = name if len(name) <= room else name[: room - 1] + "…"
    return (OK if row.final_ok else BAD, (name.ljust(room), ""), (" " + observed, "" if row.final_ok else "bold red"),
            reboot_mark(row))


@dataclass(frozen=True)
class Columns:
    id: int
    value: int
    short: bool  # ids without their sysctl:/limits: prefix


def table_widths(rows: list[TuningRow], width: int) -> Columns:
    """Column widths of the wide table: values as wide as they are (up to 22) and full ids when
    they fit; else ids without their prefix, and the values share what is left."""
    longest = max([len(r.expected) for r in rows] + [len(r.observed) for r in rows] + [8])
    value_w = min(22, longest)
    fixed = 2 + 3 * (value_w + 1) + 2  # mark, three values with a space, the after-reboot mark
    full = max([len(r.id) for r in rows] + [6])
    short = max([len(short_id(r.id)) for r in rows] + [6])
    if fixed + full + 1 <= width:
        return Columns(full, value_w, False)
    id_w = min(short, max(12, width - 1 - 6 - 3 * 10))  # the ids first, values keep 10 columns
    value_w = max(8, min(value_w, (width - id_w - 1 - 6) // 3))
    return Columns(id_w, value_w, True)


def table_head(cols: Columns) -> Line:
    return ((f"  {'id'.ljust(cols.id)} {'expected'.ljust(cols.value)} {'observed'.ljust(cols.value)} "
             "after reboot", "dim"),)


def table_row(row: TuningRow, cols: Columns) -> Line:
    value_w = cols.value
    after: tuple[str, str]
    if row.after is None:
        after = ("pending", "dim")
    else:
        value = str(row.after.get("observed", ""))[:value_w]
        after = (f"✓ {value}", "green") if row.after.get("ok") else (f"✖ {value}", "bold red")
    name = short_id(row.id) if cols.short else row.id
    name = name if len(name) <= cols.id else name[: cols.id - 1] + "…"
    return (OK if row.ok else BAD, (name.ljust(cols.id) + " ", ""),
            (row.expected[:value_w].ljust(value_w) + " ", "dim"),
            (row.observed[:value_w].ljust(value_w) + " ", "" if row.ok else "bold red"), after)


def tuning_table(rows: list[TuningRow], width: int) -> list[Line]:
    """Wide: id, expected, observed, ok, after reboot (the value read back after it)."""
    cols = table_widths(rows, width)
    return [table_head(cols), *(table_row(row, cols) for row in rows)]


def preflight_mark(item: dict) -> tuple[str, str]:
    if item.get("ok"):
        return OK
    return BAD if item.get("severity", "blocker") == "blocker" else WARN


def preflight_summary(items: list, compact: bool = False) -> Line:
    failed = [i for i in items if not i.get("ok")]
    blockers = [i for i in failed if i.get("severity", "blocker") == "blocker"]
    passed = "" if compact else " passed"
    line: list[tuple[str, str]] = [(f"{len(items) - len(failed)}/{len(items)}{passed}",
                                    "green" if not failed else "bold yellow")]
    if blockers:
        line.append((f" · {len(blockers)} blocker{'s' if len(blockers) != 1 else ''} failed", "bold red"))
    elif failed:
        line.append((f" · {len(failed)} warning{'s' if len(failed) != 1 else ''}", "bold yellow"))
    return tuple(line)


def failing_first(items: list) -> list[dict]:
    return sorted((i for i in items if isinstance(i, dict)),
                  key=lambda i: (bool(i.get("ok")), severity_rank(str(i.get("severity")))))


def preflight_lines(item: dict, width: int) -> list[Line]:
    """One line (title, observed) when it fits, else the title and under it what was observed."""
    observed = str(item.get("observed", ""))
    if not item.get("ok"):
        observed = f"{observed} (want {item.get('expected', '')})"
    title = str(item.get("title") or item.get("id", ""))
    title_style, observed_style = ("", "dim") if item.get("ok") else ("bold", "red")
    if 2 + len(title) + 2 + len(observed) <= width:
        return [(preflight_mark(item), (title, title_style), ("  " + observed, observed_style))]
    return [(preflight_mark(item), (title, title_style)), (("  ", ""), (observed, observed_style))]


def preflight_rows(item: dict, title_w: int, width: int) -> list[Line]:
    """Wide: the check's title in a column, then what was observed (and, when it failed, what was
    wanted and how much it matters), wrapped under its column when long."""
    title = str(item.get("title") or item.get("id", ""))
    title = title if len(title) <= title_w else title[: title_w - 1] + "…"
    ok = bool(item.get("ok"))
    observed = str(item.get("observed", ""))
    if not ok:
        observed = f"{item.get('severity', 'blocker')}: {observed} (want {item.get('expected', '')})"
    room = max(10, width - 2 - title_w - 1)
    chunks = textwrap.wrap(observed, room) or [""]
    style = "" if ok else "red"
    first: Line = (preflight_mark(item), (title.ljust(title_w) + " ", "" if ok else "bold"), (chunks[0], style))
    return [first, *(((" " * (2 + title_w + 1), ""), (chunk, style)) for chunk in chunks[1:])]


class TuningPane(Pane):
    PANE_TITLE = "Tuning (read back from the guest)"

    def lines(self, session: RunSession, width: int, height: int) -> list[Line]:
        rows = tuning_rows(session)
        if not rows:
            return [(("no tuning yet", "dim"),), (("(each is read back from the guest)", "dim"),)]
        body = tuning_table(rows, width) if width >= 70 else [tuning_line(row, width) for row in rows]
        return [tuning_summary(rows), *body]


class PreflightPane(Pane):
    PANE_TITLE = "Preflight checklist"

    def lines(self, session: RunSession, width: int, height: int) -> list[Line]:
        items = session.state.preflight
        if not items:
            return [(("not checked yet", "dim"),), (("(after the tuning survived a reboot)", "dim"),)]
        ordered = failing_first(items)
        if width < 70:
            return [preflight_summary(items), *(line for item in ordered for line in preflight_lines(item, width))]
        title_w = min(52, max(len(str(i.get("title") or i.get("id", ""))) for i in ordered), width // 2)
        head: Line = ((f"  {'check'.ljust(title_w)} {'observed'}", "dim"),)
        return [preflight_summary(items), head, *(line for item in ordered for line in preflight_rows(item, title_w, width))]


class PreparationPane(Pane):
    """The dashboard's view while the guest is prepared: the preflight's verdict (and what failed),
    then every tuning with its value and whether it survived the reboot; failures first when the
    pane is too short (d shows everything)."""

    PANE_TITLE = "Guest preparation"

    def lines(self, session: RunSession, width: int, height: int) -> list[Line]:
        out: list[Line] = []
        items = session.state.preflight
        if items:
            out.append((("preflight ", "bold"), *preflight_summary(items, compact=True)))
            for item in failing_first(items):
                if not item.get("ok"):
                    out += preflight_lines(item, width)
        rows = tuning_rows(session)
        if not rows:
            if not out:
                out = [(("no tuning yet", "dim"),), (("(each is read back from the guest)", "dim"),)]
            return out
        out.append((("tuning ", "bold"), *tuning_summary(rows)))
        cols = table_widths(rows, width)
        wide = width >= 70
        if wide:
            out.append(table_head(cols))
        room = height - len(out)

        def draw(row: TuningRow) -> Line:
            return table_row(row, cols) if wide else tuning_line(row, width)

        if len(rows) <= room:
            return out + [draw(row) for row in rows]
        failing = [row for row in rows if not row.final_ok][: max(0, room - 1)]
        rest = max(0, room - 1 - len(failing))
        passing = [row for row in rows if row.final_ok]
        latest = passing[len(passing) - rest:] if rest else []
        hidden = len(rows) - len(failing) - len(latest)
        out.append(((f"… {hidden} more (d shows every one)", "dim"),))
        return out + [draw(row) for row in failing + latest]


def failed_checks(session: RunSession, width: int) -> list[Line]:
    items = session.state.preflight
    failed = [item for item in failing_first(items) if not item.get("ok")]
    if not failed:
        return []
    return [preflight_summary(items), *(line for item in failed for line in preflight_lines(item, width))]


class FailedChecksPane(Pane):
    """The result screen's list of the preflight checks that failed (what stopped the run before the
    install, or warned); it grows with what it lists and is hidden when nothing failed."""

    PANE_TITLE = "Preflight checks that failed"

    DEFAULT_CSS = """
    FailedChecksPane { height: auto; }
    """

    def lines(self, session: RunSession, width: int, height: int) -> list[Line]:
        return failed_checks(session, width)

    def get_content_height(self, container, viewport, width: int) -> int:  # noqa: ANN001
        return max(1, len(failed_checks(self.session, width)))

    def sync(self) -> None:
        self.display = bool(failed_checks(self.session, 80))
        width = self.content_size.width
        if not self.display or width <= 0:
            return
        lines = tuple(failed_checks(self.session, width))
        if lines != self.view:
            self.view = lines
            self.refresh(layout=True)
