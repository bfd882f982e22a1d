"""The lab guest's sysfs choice files (I/O scheduler, THP) behave like the kernel's under a shell's
`echo word > file`: the ticker that keeps them in the kernel's shape never undoes a write caught
between its truncation and its bytes (seen as a tuning that read back `none` after mq-deadline)."""

from __future__ import annotations

import time

from backend.lab.guest.runtime import SCHEDULER, build_runtime
from tests.lab_fixtures import hardware


def test_a_write_caught_between_truncate_and_bytes_is_not_undone(tmp_path):
    runtime = build_runtime(tmp_path / "runtime", hardware(), time.time(), 600.0)
    path = tmp_path / "runtime" / SCHEDULER
    path.write_text("none\n")
    runtime.normalise()
    assert runtime.value(SCHEDULER) == "none"

    handle = runtime.file(SCHEDULER)
    real_read = handle.read

    def read_during_a_write() -> str:
        """The ticker reads the file the shell just truncated; the shell's bytes land right after."""
        handle.read = real_read
        path.write_text("")
        seen = real_read()
        with path.open("r+") as shell:
            shell.write("mq-deadline\n")
        return seen

    handle.read = read_during_a_write
    runtime.normalise()
    runtime.normalise()
    assert "[mq-deadline]" in path.read_text()


def test_a_file_left_empty_gets_its_last_value_back(tmp_path):
    runtime = build_runtime(tmp_path / "runtime", hardware(), time.time(), 600.0)
    path = tmp_path / "runtime" / SCHEDULER
    path.write_text("kyber\n")
    runtime.normalise()
    path.write_text("")
    runtime.normalise()
    runtime.normalise()
    assert "[kyber]" in path.read_text()
