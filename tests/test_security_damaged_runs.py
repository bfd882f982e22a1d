"""A damaged or hostile run directory (hypothesis): journal lines of every event type with fields of
any type, bytes that are not UTF-8, a run.json that is not what we wrote. `report` (and `--resume`'s
reading of run.json) answer with a report or one clear message, never an internal error."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.events import event_types
from tui import cli

TYPES = sorted(event_types())
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=10)


@st.composite
def event_lines(draw) -> bytes:
    kind = draw(st.sampled_from(TYPES))
    names = [f.name for f in dataclasses.fields(event_types()[kind])]
    data = {"type": kind, "ts": draw(st.one_of(st.floats(1.7e9, 1.8e9), json_values))}
    for name in draw(st.lists(st.sampled_from(names), max_size=len(names), unique=True)):
        data[name] = draw(json_values)
    line = json.dumps(data).encode()
    return draw(st.sampled_from([line, line[: len(line) // 2], b"\xff\xfe" + line, line.replace(b",", b"\x00", 1)]))


journals = st.lists(event_lines(), max_size=12).map(lambda lines: b"\n".join(lines) + b"\n")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(events=journals, samples=journals, meta=json_values)
def test_report_on_a_damaged_run_is_a_report_or_one_clear_message(tmp_path, monkeypatch, events, samples, meta):
    crash = tmp_path / "crash"
    crash.mkdir(exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(crash))
    with tempfile.TemporaryDirectory(dir=tmp_path) as work:
        run = Path(work)
        (run / "events.jsonl").write_bytes(events)
        (run / "samples.jsonl").write_bytes(samples)
        (run / "run.json").write_text(json.dumps(meta))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["report", str(run), "--json"])
    assert list(crash.iterdir()) == [], err.getvalue()
    assert code in (0, 2), err.getvalue()
    assert "internal error" not in err.getvalue()
