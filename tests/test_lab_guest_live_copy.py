"""A snapshot of a running lab guest copies its disk while the guest writes: a file the guest renames
away during the copy (a temp file made atomic by `mv`) is left out, it does not fail the snapshot
(which failed `POST .../snapshot` with HTTP 500 when the run was resumed at the `vast-online` one)."""

from __future__ import annotations

import os
import shutil

import pytest

from backend.lab.guest.fsutil import copy_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the unprivileged lab copies with cp -a")


def test_a_file_renamed_away_during_the_copy_is_left_out(tmp_path, monkeypatch):
    disk = tmp_path / "disk"
    (disk / "var" / "lib").mkdir(parents=True)
    (disk / "etc").mkdir()
    (disk / "etc" / "hostname").write_text("vast-lb\n")
    (disk / "var" / "lib" / "state.json.tmp").write_text("{}")
    real_copyfile = shutil.copyfile

    def guest_renames_it_meanwhile(src, dst, *args, **kwargs):
        path = os.fspath(src)
        if path.endswith(".tmp"):
            os.replace(path, path[:-4])  # the guest's `mv state.json.tmp state.json`
        return real_copyfile(src, dst, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", guest_renames_it_meanwhile)
    copy_tree(disk, tmp_path / "snapshot")
    assert (tmp_path / "snapshot" / "etc" / "hostname").read_text() == "vast-lb\n"
    assert not (tmp_path / "snapshot" / "var" / "lib" / "state.json.tmp").exists()


def test_other_copy_errors_still_fail(tmp_path, monkeypatch):
    disk = tmp_path / "disk"
    disk.mkdir()
    (disk / "file").write_text("x")

    def disk_full(src, dst, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", disk_full)
    with pytest.raises(shutil.Error, match="No space left"):
        copy_tree(disk, tmp_path / "snapshot")
