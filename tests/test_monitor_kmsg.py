"""Kernel messages and VAST log lines that matter: /dev/kmsg records (here a regular file in the
same `pri,seq,usec,flags;text` format), the matching rules, resuming after a reconnect without
losing or repeating a message, and tailed log files (globs, files that appear, truncation)."""

from __future__ import annotations

import pytest

from backend.monitor import agent
from tests.monitor_support import AgentProcess, fake_root, write

OOM = "3,1201,812345678,-;vms invoked oom-killer: gfp_mask=0x6200ca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=0"
KILLED = "3,1202,812345700,-;Out of memory: Killed process 48213 (vms) total-vm:81234567kB, anon-rss:61234567kB"
CGROUP = "3,1203,812345800,-,caller=T4821;Memory cgroup out of memory: Killed process 4821 (mcdb)"
HUNG = "3,1301,900000000,-;INFO: task jbd2/sda1-8:512 blocked for more than 120 seconds."
LOCKUP = "0,1302,900100000,-;watchdog: BUG: soft lockup - CPU#3 stuck for 22s! [vms:4821]"
RCU = "3,1303,900200000,-;rcu: INFO: rcu_sched self-detected stall on CPU"
PANIC = "0,1304,900300000,-;Kernel panic - not syncing: Fatal exception"
NOISE = "6,1200,800000000,-;e1000: eth0 NIC Link is Up 1000 Mbps Full Duplex"
ESCAPED = "4,1306,900500000,-;Out of memory: \\x22quoted\\x22 name"


@pytest.mark.parametrize(("line", "what"), [
    (OOM, "oom"), (KILLED, "oom"), (CGROUP, "oom"), (HUNG, "hung_task"), (LOCKUP, "soft_lockup"),
    (RCU, "rcu_stall"), (PANIC, "panic"), (NOISE, None),
    ("2025-12-29 19:02:11 PANIC[P653:vmsg_keepalive_fiber] test_if_stuck: fiber stuck for 245 s", "panic"),
    ("rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "rcu_stall"),
])
def test_what_matters(line, what):
    text = line.partition(";")[2] if line[0].isdigit() and ";" in line else line
    assert agent.match_line(text) == what


def test_records_are_parsed_with_level_sequence_and_unescaped_text():
    assert agent.parse_kmsg_record(CGROUP) == ("err", 1203, 812345800,
                                               "Memory cgroup out of memory: Killed process 4821 (mcdb)")
    assert agent.parse_kmsg_record(ESCAPED)[3] == 'Out of memory: "quoted" name'
    assert agent.parse_kmsg_record(OOM + "\n SUBSYSTEM=memory\n")[3].endswith("oom_score_adj=0")
    assert agent.parse_kmsg_record("garbage") is None


def test_a_kmsg_file_is_followed_from_its_end(tmp_path):
    path = write(tmp_path / "kmsg", NOISE + "\n" + OOM + "\n")
    kmsg = agent.Kmsg(str(path))
    assert kmsg.read() == [] and kmsg.last_seq == 1201  # what was there before the start is old
    with open(path, "a") as handle:
        handle.write(KILLED + "\n SUBSYSTEM=memory\n DEVICE=x\n" + NOISE + "\n" + HUNG[:20])
    got = kmsg.read()
    assert [(r[1], r[4]) for r in got] == [(1202, "oom")]
    with open(path, "a") as handle:
        handle.write(HUNG[20:] + "\n")  # the rest of a half-written record
    assert [(r[1], r[4]) for r in kmsg.read()] == [(1301, "hung_task")]
    assert kmsg.last_seq == 1301


def test_resuming_after_a_sequence_number_loses_and_repeats_nothing(tmp_path):
    path = write(tmp_path / "kmsg", "\n".join([OOM, KILLED, NOISE, HUNG, LOCKUP]) + "\n")
    resumed = agent.Kmsg(str(path), after_seq=1202)
    assert [r[1] for r in resumed.read()] == [1301, 1302]
    rebooted = agent.Kmsg(str(path), after_seq=99999)  # sequence numbers restart at a reboot
    assert [r[1] for r in rebooted.read()] == [1201, 1202, 1301, 1302]


def test_log_tails_follow_globs_new_files_and_truncation(tmp_path):
    old = write(tmp_path / "vast" / "vms.log", "PANIC[P1:old] before the agent started\n")
    tail = agent.Tail([str(tmp_path / "vast" / "*.log")])
    assert tail.read(0.0) == []
    with open(old, "a") as handle:
        handle.write("ordinary line\nPANIC[P653:vmsg_keepalive_fiber] fiber stuck\npartial PAN")
    got = tail.read(1.0)
    assert [(p, t) for p, _, t, _ in got] == [(str(old), "PANIC[P653:vmsg_keepalive_fiber] fiber stuck")]
    offset = got[0][1]
    assert old.read_bytes()[:offset].endswith(b"fiber stuck\n")
    assert tail.resume_offsets() == {str(old): offset}  # where the unfinished line starts
    new = write(tmp_path / "vast" / "mcdb.log", "PANIC[P9:x] in a file that appeared later\n")
    assert [t for _, _, t, _ in tail.read(2.0)] == []  # the glob is expanded again every few seconds
    assert [t for _, _, t, _ in tail.read(10.0)] == ["PANIC[P9:x] in a file that appeared later"]
    new.write_text("Out of memory: after a truncation\n")
    assert [w for _, _, _, w in tail.read(11.0)] == ["oom"]


def test_a_tail_resumes_from_a_given_offset(tmp_path):
    log = write(tmp_path / "v.log", "PANIC[P1:a] one\nPANIC[P2:b] two\n")
    tail = agent.Tail([], {str(log): len("PANIC[P1:a] one\n")})
    assert [t for _, _, t, _ in tail.read(0.0)] == ["PANIC[P2:b] two"]


def test_the_agent_reports_kernel_and_log_lines_with_resume_points(tmp_path):
    root = fake_root(tmp_path, kmsg=NOISE + "\n")
    log = write(tmp_path / "vast.log", "")
    with AgentProcess("--root", str(root), "--interval", "0.2", "--tail", str(log)) as run:
        run.line("hello")
        with open(root / "dev" / "kmsg", "a") as handle:
            handle.write(OOM + "\n")
        with open(log, "a") as handle:
            handle.write("PANIC[P653:vmsg_keepalive_fiber] test_if_stuck\n")
        first = run.line("kmsg")
        second = run.line("kmsg")
        sample = run.line("sample")
        while sample["resume"]["kmsg_seq"] != 1201:
            sample = run.line("sample")
    by_source = {line["source"]: line for line in (first, second)}
    assert by_source["kmsg"]["match"] == "oom" and by_source["kmsg"]["seq"] == 1201
    assert by_source["kmsg"]["level"] == "err"
    # kmsg times come from the record: boot time (from /proc/uptime) + usec
    assert by_source["kmsg"]["t"] == pytest.approx(by_source[str(log)]["t"] - 1000.0 + 812.345678, abs=5)
    assert by_source[str(log)]["match"] == "panic" and by_source[str(log)]["offset"] == log.stat().st_size
    assert sample["resume"]["tail"] == {str(log): log.stat().st_size}


def test_a_replaced_kmsg_file_is_a_new_boot(tmp_path):
    path = write(tmp_path / "kmsg", OOM + "\n" + HUNG + "\n")
    kmsg = agent.Kmsg(str(path))
    assert kmsg.last_seq == 1301
    fresh = write(tmp_path / "kmsg.new", "3,0,1000,-;Out of memory: Killed process 7 (vms)\n")
    fresh.replace(path)  # the lab rebuilds a guest's /dev/kmsg at each boot: numbers restart at 0
    assert [(r[1], r[4]) for r in kmsg.read()] == [(0, "oom")]
