"""Steps of the 'install' group: the VAST install the field engineer scripted by hand, as phases.

    system_checks   management address, cores, RAM, disk, KVM, the bundle and bootstrap script
    docker          Docker running and usable by the install user
    network         IPv6 off on the management interface (as the field script did)
    vast_dirs       VAST directories, the local registry cache, the registry's hosts entry,
                    Docker's insecure registry, the VAST OS release file
    ssh_keys        the SSH key / pem the VAST tools use
    cleanup         containers of a previous install (all but the registry), hugepages
    bootstrap       `vast_bootstrap.sh --interface <ip> --skip-prompt` (about 15 min), detached
    cluster_create  the loopback configuration and `vman.sh ... cluster create ... --loopback`, detached
    wait_online     until VMS says ONLINE (the install log is followed at the same time)
    wait_deploy     until the `cluster_deploy` task completed (about 5.5 min after ONLINE)
    verify          hosts, CNodes/DNodes and containers

Long phases run as detached jobs on the guest (`GuestClient.run_detached`), so a dropped SSH
connection or a closed laptop does not stop the install; their logs are followed by byte offset,
and a resumed run continues from the last offset in the journal, losing and repeating no line.
Progress comes from two sources, cross-checked: the install log (ANSI and spinners stripped) and
the VMS REST API (`clusters[0].state`, the `cluster_deploy` vtask). States are plain strings: VAST
5.4 has more of them than 5.3, so none is refused for being unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field

from backend.analysis import evidence
from backend.clients import guestjobs, installlog, masking, vmstrust
from backend.clients.commands import sh
from backend.clients.guestssh import DetachedJob, GuestClient
from backend.clients.vms import VmsClient, VmsUnreachable
from backend.clients.vtask import (
    TASK_DONE_STATES,
    TASK_FAILED_STATES,
    TASK_UNSURE_STATES,
    UNKNOWN_TASK_GRACE_S,
    task_messages,
)
from backend.errors import RunFailed
from backend.events import (
    ClusterStateChanged,
    ClusterVerified,
    InstallLogAppended,
    KernelMessageSeen,
    SnapshotRolledBack,
    StepStarted,
    VtaskChanged,
)
from backend.monitor.stream import GuestAgentSource, MonitorSession
from backend.run.engine import RunContext, Step
from backend.secrets import redact
from backend.steps.prepare import guest_client
from backend.steps.provision import GUEST_NEEDS

BUNDLES = "/vast/bundles"
DEPLOY = "/vast/deploy"
PEM = f"{DEPLOY}/ssh_key.pem"
LOOPBACK_CONF = f"{DEPLOY}/loopback_conf.yml"
REGISTRY = "vastdata.registry.local"
REGISTRY_PORT = 5000
REGISTRY_IP = "11.0.0.1"  # the registry runs on the loopback cluster's dummy0 address
VSETTINGS = "CAS_OVER_RPC=true,IN_CLUSTER_COMMUNICATION_TCP=true"
# Exported for vman.sh as the field's script did; vman.sh adds it to its volume mounts (ground-truth §10)
EXTRA_VOLUME_MOUNTS = "-v /file_server:/file_server"
CONTAINERS = ("vast_vms", "mcvms", "registry")
DEFAULT_VMS_PASSWORD = "123456"  # the OVA's documented VMS password for admin (public)
VMS_PASSWORD_FILE = "vms-password"  # in the cluster_create job's folder, 0600, deleted by the job
VMS_PASSWORD_ENV = "VMS_PASSWORD"  # how vcli gets the password: see cluster_create_command

POLL_S = 5.0  # target seconds between VMS polls (the wall floor keeps the lab from hammering)
MIN_POLL_WALL_S = 0.25
ONLINE_TIMEOUT_S = 45 * 60  # from cluster create to ONLINE; the field run needed 12 min 20 s
DEPLOY_TIMEOUT_S = 20 * 60  # from ONLINE to cluster_deploy COMPLETED; the field run needed 5 min 28 s
BOOTSTRAP_TIMEOUT_S = 60 * 60

LOG_FOLLOWER = "install_log_follower"
VMS = "vms"
CLUSTER_VIEW = "cluster_view"
MONITOR = "monitor"


# --- shared pieces ------------------------------------------------------------------------------


async def _guest(ctx: RunContext) -> GuestClient:
    return await guest_client(ctx)


async def _sudo(ctx: RunContext, command: str, what: str, timeout: float = 300.0) -> str:
    guest = await _guest(ctx)
    result = await guest.run(command, sudo=True, timeout=timeout)
    if not result.ok:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RunFailed(f"{what} failed on the guest (exit {result.exit_status}): {detail[0]}")
    return result.stdout


async def _user(ctx: RunContext, command: str, timeout: float = 120.0) -> tuple[int, str]:
    guest = await _guest(ctx)
    result = await guest.run(command, timeout=timeout)
    return result.exit_status, result.stdout.strip()


def _mgmt_ip(ctx: RunContext) -> str:
    return str(ctx.facts.guest_address)  # the install steps need it (GUEST_NEEDS): the engine checked


async def vms_client(ctx: RunContext) -> VmsClient:
    """The run's VMS client, made on first use (after the bootstrap, also on resume): its certificate
    is trusted first (backend/clients/vmstrust.py), so no credential goes to a server it does not vouch for."""
    client = ctx.services.get(VMS)
    if client is None:
        ip = _mgmt_ip(ctx)
        trust = await vmstrust.establish(ctx, await _guest(ctx), ip)
        client = VmsClient.for_run(ctx, ip, trust=trust)
        ctx.services[VMS] = client
    return client


async def poll_sleep(ctx: RunContext) -> None:
    await asyncio.sleep(max(MIN_POLL_WALL_S, ctx.clock.wall_seconds(POLL_S)))


def attempt_events(ctx: RunContext) -> list:
    """The journal's events since the install was last rolled back (the current attempt's)."""
    events: list = []
    for event in ctx.run.events():
        if isinstance(event, SnapshotRolledBack):
            events = []
        else:
            events.append(event)
    return events


def _resume_point(ctx: RunContext, source: str) -> tuple[int, str]:
    """Where the journal says this attempt stopped reading a job's log (0 for a new attempt), and the
    last line it journaled from it (a spinner repaints that line again after the offset)."""
    offset, last = 0, ""
    for event in attempt_events(ctx):
        if isinstance(event, InstallLogAppended) and event.source == source and event.offset >= offset:
            offset, last = event.offset, (event.lines or [last])[-1]
    return offset, last


@dataclass
class ClusterView:
    """What the install log and VMS have said about the cluster so far, per source."""

    states: dict[str, list[str]] = field(default_factory=dict)  # source -> states in order
    deploy_state: str = ""
    deploy_id: int | None = None
    deploy_unsure_since: float | None = None  # when the task went UNKNOWN (target time)
    failure: str = ""

    def latest(self, source: str) -> str:
        seen = self.states.get(source) or [""]
        return seen[-1]

    @property
    def state(self) -> str:
        return self.latest("api") or self.latest("log")

    def saw(self, state: str) -> bool:
        return any(state in seen for seen in self.states.values())

    def note(self, state: str, source: str) -> bool:
        seen = self.states.setdefault(source, [])
        if seen and seen[-1] == state:
            return False
        seen.append(state)
        return True

    def collapsed(self, source: str) -> bool:
        """ACTIVATING followed by INIT or FAILED in one source's own order (attempt 2 of the field report:
        ACTIVATING -> UNKNOWN -> INIT). One source only, so a slow poll never looks like a collapse."""
        seen = self.states.get(source, [])
        if "ACTIVATING" not in seen:
            return False
        after = seen[seen.index("ACTIVATING") + 1:]
        return any(state in ("INIT", "FAILED") for state in after)


def _view(ctx: RunContext) -> ClusterView:
    view = ctx.services.get(CLUSTER_VIEW)
    if view is None:
        view = ClusterView()
        for event in attempt_events(ctx):  # a resumed run knows what this attempt saw before
            if isinstance(event, ClusterStateChanged):
                view.note(event.state, event.source)
            elif isinstance(event, VtaskChanged) and event.name == "cluster_deploy":
                view.deploy_state, view.deploy_id = event.state, event.task_id
                view.deploy_unsure_since = event.ts if event.state in TASK_UNSURE_STATES else None
        ctx.services[CLUSTER_VIEW] = view
    return view


def note_cluster_state(ctx: RunContext, state: str, source: str, ts: float = 0.0) -> None:
    """A state seen in one source; `ts` is the log line's own time (0: now)."""
    view = _view(ctx)
    previous = view.latest(source)
    if view.note(state, source):
        ctx.emit(ClusterStateChanged(ts=ts, state=state, previous=previous, source=source))
        if view.collapsed(source) and not view.failure:
            view.failure = (f"the cluster fell back to {state} after ACTIVATING "
                            f"({' -> '.join(view.states[source])}, from the {source})")


def _note_task(ctx: RunContext, name: str, task_id: int | None, state: str, runtime: float | None,
               message: str = "", ts: float = 0.0) -> None:
    view = _view(ctx)
    if name != "cluster_deploy":
        return
    if state != view.deploy_state:
        view.deploy_state, view.deploy_id = state, task_id
        event = ctx.emit(VtaskChanged(ts=ts, name=name, task_id=task_id or 0, state=state, runtime_s=runtime,
                                      message=message))
        view.deploy_unsure_since = event.ts if state in TASK_UNSURE_STATES else None
    if state in TASK_FAILED_STATES:
        view.failure = f"the cluster_deploy task ended {state}" + (f": {message}" if message else "")


def _facts_from_lines(ctx: RunContext, source: str, lines: list[str]) -> None:
    for line in lines:
        fact = installlog.parse_line(line)
        if fact is None:
            continue
        if fact.kind == "cluster_state":
            note_cluster_state(ctx, fact.value, "log", ts=fact.ts or 0.0)
        elif fact.kind == "task":
            _note_task(ctx, fact.name, fact.task_id, fact.value, fact.runtime_s, ts=fact.ts or 0.0)
        elif fact.kind in ("panic", "oom"):
            ctx.emit(KernelMessageSeen(source=f"install:{source}", text=line, match=fact.kind))


async def follow_job(ctx: RunContext, job: DetachedJob, source: str) -> int:
    """Follow a detached job's log until it ends, emitting lines and facts; returns its exit status.
    Survives dropped connections (reconnects and continues from the last offset)."""
    offset, previous = _resume_point(ctx, source)  # previous: the last line shown; a spinner repaints it
    while True:
        guest = await _guest(ctx)
        try:
            async for raw, new_offset in guest.follow(job, offset, poll_s=1.0):
                offset = new_offset
                lines = []
                for line in installlog.clean_lines("\n".join(raw)):
                    line = redact(line)  # no known secret reaches any subscriber (the screen)
                    if line != previous:
                        lines.append(line)
                        previous = line
                if lines:
                    ctx.emit(InstallLogAppended(source=source, lines=lines, offset=offset))
                    _facts_from_lines(ctx, source, lines)
            status = await guest.job_exit_status(job)
            return -1 if status is None else status
        except RunFailed as exc:
            if guest.connected:
                raise
            ctx.progress(f"lost the guest while following {source}: {exc.message}; reconnecting")
            await guest.reconnect()


def log_lines(ctx: RunContext, source: str, count: int = 3) -> list[str]:
    """The last `count` lines this attempt journaled from a job's log."""
    lines: list[str] = []
    for event in attempt_events(ctx):
        if isinstance(event, InstallLogAppended) and event.source == source:
            lines.extend(event.lines)
    return [line.strip() for line in lines[-count:]]


def _tail(ctx: RunContext, source: str, count: int = 3) -> str:
    return " | ".join(log_lines(ctx, source, count))


# --- monitoring ---------------------------------------------------------------------------------

VAST_LOGS = ("/vast/vman/vms/log/workers.log", "/vast/vman/vms/log/vms.log")


@dataclass
class _Monitor:
    """The monitoring agent's session, running in the background until the run's context closes."""

    session: MonitorSession
    task: asyncio.Task

    @property
    def running(self) -> bool:
        return not self.task.done()

    async def close(self) -> None:
        self.session.stop()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout=10.0)
        except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
            self.task.cancel()


def _monitor_resume_point(ctx: RunContext) -> tuple[float | None, int | None, dict[str, int]]:
    """Where this attempt's monitoring stopped, by the journal: the last sample's time (None: no sample
    since the last rollback), and the kernel message sequence and log offsets after the last lines
    the agent reported."""
    since, seq, offsets = 0.0, None, {}
    for event in ctx.run.events():
        if isinstance(event, SnapshotRolledBack):
            since, seq, offsets = event.ts, None, {}
        elif isinstance(event, KernelMessageSeen) and event.source == "kmsg" and event.seq is not None:
            seq = event.seq if seq is None else max(seq, event.seq)
        elif isinstance(event, KernelMessageSeen) and event.offset is not None and event.source in VAST_LOGS:
            offsets[event.source] = max(offsets.get(event.source, 0), event.offset)
    last = max((s.ts for s in ctx.run.samples() if s.ts > since), default=None)
    return last, seq, offsets


async def start_monitor(ctx: RunContext, down_reason: str = "vast-loopback was not running", *,
                        read_record: bool = True) -> None:
    """Start the monitoring agent on the guest (samples, stalls, kernel and VAST log lines), unless it
    runs. It goes on after the kernel messages and log lines the journal has, and the time since the
    last journaled sample is marked as a gap (`down_reason` says why nothing was sampled); the guest's
    record of that gap is read first, in the background (the run goes on meanwhile), unless
    `read_record` is false (a reboot of ours: the agent reports the new boot's kernel lines itself)."""
    monitor = ctx.services.get(MONITOR)
    if monitor is None or not monitor.running:
        session = MonitorSession(GuestAgentSource(await _guest(ctx)), ctx.bus, ctx.clock, tails=VAST_LOGS)
        last, seq, offsets = await asyncio.to_thread(_monitor_resume_point, ctx)
        if last is not None:
            session.last_covered = session.down_since = last
            session.down_reason = down_reason
            session.kmsg_seq = seq
            session.tail_offsets.update(offsets)
        runs = _monitor_after_gap(ctx, session) if last is not None and read_record else session.run()
        ctx.services[MONITOR] = _Monitor(session, asyncio.ensure_future(runs))


async def stop_monitor(ctx: RunContext) -> None:
    """Stop the monitoring agent (before the guest goes away on purpose, or to read its record)."""
    monitor = ctx.services.pop(MONITOR, None)
    if monitor is not None:
        await monitor.close()


async def run_monitor(ctx: RunContext) -> dict:
    """The `monitor` step: start the monitoring agent (in a resumed run, where the journal stopped)."""
    await start_monitor(ctx)
    return {"monitor": True}


async def _monitor_after_gap(ctx: RunContext, session: MonitorSession) -> None:
    """A resumed run's monitoring: the guest's record first (what happened while no one watched),
    then the agent, going on after what the read covered (no kernel or log line lost or repeated)."""
    record = await evidence.read_guest_record(ctx, "resume", logs=VAST_LOGS,
                                              seen=await asyncio.to_thread(attempt_events, ctx))
    if record is not None:
        if record.last_seq is not None:
            session.kmsg_seq = record.last_seq
        session.tail_offsets.update(record.log_sizes)
    await session.run()


DRAIN_SAMPLES = 8  # a failed run waits this many sample intervals (the agent lists new logs every 5)


async def drain_monitor(ctx: RunContext) -> None:
    """Give a running monitor a few sample intervals to deliver what the guest wrote last (what it
    never delivered, an OOM kill while vast-loopback was down, is read from the guest's record)."""
    monitor = ctx.services.get(MONITOR)
    if monitor is not None and monitor.running:
        await asyncio.sleep(DRAIN_SAMPLES * monitor.session.wall_interval)


async def read_record_at_failure(ctx: RunContext) -> None:
    """A failed pass whose attempt reached the install: let the monitor deliver what the guest wrote
    last, stop it, then read the guest's record for what the monitor never delivered (written while
    vast-loopback was not running, or before a restarted agent caught up)."""
    await drain_monitor(ctx)
    await stop_monitor(ctx)
    seen = await asyncio.to_thread(attempt_events, ctx)
    if any(isinstance(event, StepStarted) and event.group == "install" for event in seen):
        await evidence.read_guest_record(ctx, "failure", logs=VAST_LOGS, seen=seen)


async def recheck_monitor(ctx: RunContext) -> bool:
    """A resumed run starts the agent again (a finished step says it ran, not that it runs now); the
    step stays finished, as `connect` does when it reopens its client."""
    await run_monitor(ctx)
    return True


# --- phases -------------------------------------------------------------------------------------


async def run_system_checks(ctx: RunContext) -> dict:
    ip = _mgmt_ip(ctx)
    probe = (
        "printf 'cores=%s\\n' \"$(nproc)\"; "
        "printf 'mem_gib=%s\\n' \"$(free -g | awk '/^Mem:/{print $2}')\"; "
        "printf 'disk_gib=%s\\n' \"$(df -BG / | awk 'NR==2 {print $4}' | tr -d G)\"; "
        "printf 'virt=%s\\n' \"$(systemd-detect-virt 2>/dev/null || echo unknown)\"; "
        f"printf 'bundle=%s\\n' \"$(ls {BUNDLES}/vastdata_release_*.vast.tar.gz 2>/dev/null | head -n1)\"; "
        f"printf 'bootstrap=%s\\n' \"$(test -x {BUNDLES}/vast_bootstrap.sh && echo yes)\"; "
        "printf 'iface=%s\\n' \"$(ip -o -4 addr show 2>/dev/null | awk -v ip=\"$MGMT\" "
        "'index($4, ip\"/\")==1 {print $2; exit}')\""
    )
    status, out = await _user(ctx, f"MGMT={sh(ip)}; " + probe)
    facts = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if not facts.get("bundle"):
        raise RunFailed(f"no VAST bundle in {BUNDLES} (vastdata_release_*.vast.tar.gz)",
                        hint="the OVA ships it; was the disk imported from the right OVA?")
    if facts.get("bootstrap") != "yes":
        raise RunFailed(f"{BUNDLES}/vast_bootstrap.sh is missing or not executable")
    if facts.get("virt") != "kvm":
        ctx.progress(f"virtualization detected: {facts.get('virt')} (expected kvm)")
    ctx.progress(f"management IP {ip} on {facts.get('iface') or 'an unknown interface'}, "
                 f"{facts.get('cores')} cores, {facts.get('mem_gib')} GiB RAM, {facts.get('disk_gib')} GiB free")
    return {"mgmt_ip": ip, "mgmt_iface": facts.get("iface") or "eth0"}


async def run_docker(ctx: RunContext) -> dict:
    await _sudo(ctx, "systemctl is-active --quiet docker || systemctl start docker", "starting Docker")
    status, _ = await _user(ctx, "docker ps >/dev/null 2>&1")
    if status != 0:
        # The install user joined the docker group in a session that predates it: a new connection.
        guest = await guest_client(ctx, fresh=True)
        result = await guest.run("docker ps >/dev/null 2>&1")
        if not result.ok:
            raise RunFailed(f"user {ctx.answers.guest.user} cannot use Docker",
                            hint="it must be in the docker group (the tuning step adds it)")
    return {}


async def run_network(ctx: RunContext) -> dict:
    iface = ctx.facts.mgmt_iface or "eth0"
    key = f"net.ipv6.conf.{iface}.disable_ipv6"
    status, value = await _user(ctx, sh("sysctl", "-n", key))
    if status != 0:
        ctx.progress(f"no IPv6 on {iface}; nothing to disable")
    elif value.strip() != "1":
        await _sudo(ctx, sh("sysctl", "-q", "-w", f"{key}=1"), f"disabling IPv6 on {iface}")
        ctx.progress(f"IPv6 disabled on {iface}")
    return {}


async def run_vast_dirs(ctx: RunContext) -> dict:
    user = ctx.answers.guest.user
    dirs = ["/file_server", BUNDLES, DEPLOY, "/vast/data", "/vast/vman/vms/log"]
    await _sudo(ctx, sh("mkdir", "-p", *dirs) + " && " + sh("chown", "-R", f"{user}:{user}", "/file_server", "/vast")
                + " && chmod 755 /vast /vast/*", "creating the VAST directories")
    await _sudo(ctx, f"printf '%s\\n' {sh(f'{REGISTRY}:{REGISTRY_PORT}')} > /file_server/DCACHE",
                "configuring the local registry cache")
    await _sudo(ctx, f"grep -q {sh(REGISTRY)} /etc/hosts || printf '%s %s\\n' {sh(REGISTRY_IP)} {sh(REGISTRY)}"
                " >> /etc/hosts", "adding the registry to /etc/hosts")
    daemon = json.dumps({"insecure-registries": [f"{REGISTRY}:{REGISTRY_PORT}"]})
    await _sudo(ctx, f"grep -qs {sh(REGISTRY)} /etc/docker/daemon.json || {{ mkdir -p /etc/docker && "
                f"printf '%s\\n' {sh(daemon)} > /etc/docker/daemon.json && systemctl restart docker; }}",
                "configuring Docker's insecure registry")
    await _sudo(ctx, "printf '%s\\n' 1.1.1 > /etc/vast-os-release && chmod 644 /etc/vast-os-release",
                "writing the VAST OS release file")
    return {}


async def run_ssh_keys(ctx: RunContext) -> dict:
    user = ctx.answers.guest.user
    status, _ = await _user(ctx, sh("test", "-f", PEM))
    if status == 0:
        ctx.progress("SSH keys already exist")
        return {"pem": PEM}
    script = (
        "set -e; mkdir -p ~/.ssh; chmod 700 ~/.ssh; "
        "test -f ~/.ssh/id_rsa || ssh-keygen -f ~/.ssh/id_rsa -q -N ''; "
        "touch ~/.ssh/authorized_keys; "
        "grep -qF \"$(cat ~/.ssh/id_rsa.pub)\" ~/.ssh/authorized_keys || cat ~/.ssh/id_rsa.pub >> ~/.ssh/authorized_keys; "
        "chmod 600 ~/.ssh/authorized_keys"
    )
    status, out = await _user(ctx, script)
    if status != 0:
        raise RunFailed(f"creating the SSH key for the VAST tools failed: {out[-200:]}")
    home = await (await _guest(ctx)).home()
    await _sudo(ctx, sh("cp", f"{home}/.ssh/id_rsa", PEM) + " && " + sh("chown", f"{user}:{user}", PEM)
                + " && " + sh("chmod", "600", PEM), "installing the pem for the VAST tools")
    return {"pem": PEM}


async def run_cleanup(ctx: RunContext) -> dict:
    await _user(ctx, "docker ps -a --format '{{.ID}} {{.Names}}' 2>/dev/null | grep -v ' registry$' "
                     "| cut -d' ' -f1 | xargs --no-run-if-empty docker rm -f >/dev/null 2>&1 || true")
    await _sudo(ctx, "echo 0 > /proc/sys/vm/nr_hugepages", "clearing hugepages")
    return {}


async def run_bootstrap(ctx: RunContext) -> dict:
    guest = await _guest(ctx)
    ip = _mgmt_ip(ctx)
    command = f"cd {sh(BUNDLES)} && ./vast_bootstrap.sh --interface {sh(ip)} --skip-prompt"
    job = await guest.run_detached("bootstrap", command)
    ctx.progress("bootstrap running (about 15 minutes in the field run)")
    try:
        status = await asyncio.wait_for(follow_job(ctx, job, "bootstrap"),
                                        timeout=ctx.clock.wall_seconds(BOOTSTRAP_TIMEOUT_S))
    except asyncio.TimeoutError:
        raise RunFailed(f"bootstrap did not finish within {BOOTSTRAP_TIMEOUT_S // 60} min",
                        hint=f"last lines: {_tail(ctx, 'bootstrap')}") from None
    if status != 0:
        raise RunFailed(f"vast_bootstrap.sh failed (exit {status})", hint=f"last lines: {_tail(ctx, 'bootstrap')}")
    try:  # VMS may be restarting right now: ride through it as every VMS poll does
        await (await vms_client(ctx)).list("clusters")
    except VmsUnreachable:
        raise RunFailed("bootstrap finished but VMS does not answer",
                        hint=f"last lines: {_tail(ctx, 'bootstrap')}") from None
    return {"vms_up": True}


def loopback_conf(name: str) -> str:
    """The loopback configuration; the name quoted (a cluster named `null`, `yes` or `off` is a string)."""
    return (
        f"name: {json.dumps(name)}\n"
        "loopback: true\n"
        "vip_pools:\n"
        "   vippool-1:\n"
        "     start_ip: '15.0.0.1'\n"
        "     end_ip: '15.0.0.8'\n"
        "     subnet_bits: 24\n"
        "   gateway-1:\n"
        "     role: 'replication'\n"
        "     start_ip: '18.18.0.1'\n"
        "     end_ip: '18.18.0.2'\n"
        "     subnet_bits: 24\n"
        "vms_ipv6: '1001::1'\n"
        "vip_pool_segments:\n"
        "  ipv4:\n"
        "    protocols:\n"
        "    - start_ip: '15.0.0.1'\n"
        "      end_ip: '15.0.0.8'\n"
        "      subnet_bits: 24\n"
        "    replication: []\n"
        "  ipv6:\n"
        "  - end_ip: 1000::10\n"
        "    start_ip: 1000::1\n"
        "    subnet_bits: 120\n"
    )


def vman_env() -> str:
    """The environment vman.sh runs in, as the field's script exported it (ground-truth §10)."""
    return f"DISABLE_IPV6_FOR_LOOPBACK=yes EXTRA_VOLUME_MOUNTS={sh(EXTRA_VOLUME_MOUNTS)}"


def vman_start_command(build: str) -> str:
    """`vman.sh <build> <pem> start`: the other way to start VAST again after a boot (vast.md §3)."""
    return f"cd {sh(DEPLOY)} && {vman_env()} " + sh("./vman.sh", build, PEM, "start")


def cluster_create_command(ctx: RunContext, folder: str) -> str:
    """`VMS_PASSWORD=... vman.sh ... vcli -u USER -c cluster create ...` in /vast/deploy.

    The VMS password never is an argument. The field's `vcli -u admin -p <password>` [inst] put it
    in /proc/<pid>/cmdline of vman.sh, of the docker client it starts and of vcli, readable by every
    user of the guest for the whole deploy. No public source says how else vcli takes it, so of the
    ways that stay out of argv this takes the one the real tools plausibly accept and write it down:
    - stdin cannot reach vcli: vman.sh starts its container with `docker run -t` and no `-i` [inst];
    - a file needs a vcli option nobody documents;
    - the environment is VAST's own convention (its Python CLI, vastpy-cli, reads VMS_USER and
      VMS_PASSWORD: research vast.md §1), and /proc/<pid>/environ is readable by the owner only.
    So the password is in the environment of this one vman.sh process, `VMS_PASSWORD` (unverified on
    a real VAST: vman.sh must pass it on into vcli's container; a vcli that does not read it fails
    the login, and the run says so, see `_create_hint`; it never falls back to argv). With a password
    from the answers it comes from a 0600 file in the job's `folder` (sent on stdin, deleted by the
    job) and the output is masked (`backend.clients.masking`); the OVA's documented default goes as is."""
    vast = ctx.answers.vast
    password = masking.SECRET_WORD if vast.admin_password else sh(DEFAULT_VMS_PASSWORD)
    command = (
        f"cd {sh(DEPLOY)} && {vman_env()} {VMS_PASSWORD_ENV}={password} "
        + sh("./vman.sh", vast.build, PEM, "vcli", "-u", vast.admin_user, "-c", "cluster", "create", "--build",
             vast.build, "--vsettings", VSETTINGS, "--name", vast.cluster_name, "--loopback")
    )
    if not vast.admin_password:
        return command
    return masking.masked_command(command, f"{folder}/{VMS_PASSWORD_FILE}", f"{folder}/vman.status")


def _create_hint(tail: str) -> str:
    """What to say when vman.sh cluster create failed (its last lines, and a login refused)."""
    hint = f"last lines: {tail}"
    if any(word in tail.lower() for word in ("401", "unauthorized", "password")):
        hint = ("vcli refused the login: check vast.admin_user and vast.admin_password. The password goes "
                f"to vcli in the {VMS_PASSWORD_ENV} environment variable of vman.sh, never on its command "
                f"line (where every guest user could read it); a vman.sh or vcli that does not pass it on "
                f"fails here. " + hint)
    return hint


def _start_follower(ctx: RunContext, job: DetachedJob) -> asyncio.Task:
    if LOG_FOLLOWER not in ctx.services:
        ctx.services[LOG_FOLLOWER] = _TaskService(asyncio.ensure_future(follow_job(ctx, job, "cluster_create")))
    return ctx.services[LOG_FOLLOWER].task


@dataclass
class _TaskService:
    """A background task kept in ctx.services; closing the context cancels it."""

    task: asyncio.Task

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


async def run_cluster_create(ctx: RunContext) -> dict:
    guest = await _guest(ctx)
    await guest.upload(loopback_conf(ctx.answers.vast.cluster_name).encode(), LOOPBACK_CONF)
    job = await guest.job("cluster_create")
    folder = job.log_path.rsplit("/", 1)[0]
    admin_password = ctx.answers.vast.admin_password
    if admin_password and (await guest.job_state(job)).state == "absent":
        # The password reaches the job through a 0600 file it deletes at once, never a command line.
        await guest.run(guestjobs.prepare_command(folder), check=True)
        await guest.run(masking.store_command(f"{folder}/{VMS_PASSWORD_FILE}"), check=True,
                        input=admin_password.resolve("vast.admin_password").reveal())
    job = await guest.run_detached("cluster_create", cluster_create_command(ctx, folder))
    _start_follower(ctx, job)
    ctx.progress("cluster create started: installing the build on all hosts")
    return {"cluster_job": "cluster_create"}


async def _follower(ctx: RunContext) -> asyncio.Task:
    """The task following the cluster-create log (started again after a resume)."""
    if LOG_FOLLOWER not in ctx.services:
        job = await (await _guest(ctx)).job("cluster_create")
        _start_follower(ctx, job)
    return ctx.services[LOG_FOLLOWER].task


async def _poll_api(ctx: RunContext) -> None:
    vms = await vms_client(ctx)
    cluster = await vms.cluster()
    if cluster and cluster.get("state"):
        note_cluster_state(ctx, str(cluster["state"]), "api")
    task = await vms.vtask("cluster_deploy")
    if task:
        runtime = task.get("execution_time")
        _note_task(ctx, "cluster_deploy", int(task.get("id") or 0), str(task.get("state", "")),
                   float(runtime) if isinstance(runtime, int | float) else None,
                   "; ".join(task_messages(task.get("messages")))[-300:])


async def _wait_for(ctx: RunContext, done, timeout_s: float, what: str) -> None:  # noqa: ANN001
    follower = await _follower(ctx)
    started = ctx.clock.now()
    view = _view(ctx)
    while True:
        await _poll_api(ctx)
        if not view.failure and view.deploy_unsure_since is not None and \
                ctx.clock.now() - view.deploy_unsure_since > UNKNOWN_TASK_GRACE_S:
            view.failure = (f"the cluster_deploy task has been UNKNOWN for {UNKNOWN_TASK_GRACE_S // 60} min: "
                            "the VMS lost track of it")
        if view.failure:
            raise RunFailed(view.failure, hint=f"last lines: {_tail(ctx, 'cluster_create')}")
        if done(view):
            return
        if follower.done():
            status = None if follower.cancelled() or follower.exception() else follower.result()
            await _poll_api(ctx)
            if done(view):
                return
            if status not in (None, 0):
                raise RunFailed(f"vman.sh cluster create ended with exit {status} before {what}",
                                hint=_create_hint(_tail(ctx, "cluster_create")))
        if ctx.clock.now() - started > timeout_s:
            raise RunFailed(f"no {what} after {timeout_s / 60:.0f} min (state {view.state or 'unknown'})",
                            hint="stuck far beyond the field run's timeline; see the dashboard's memory and steal")
        await poll_sleep(ctx)


async def run_wait_online(ctx: RunContext) -> dict:
    await _wait_for(ctx, lambda view: view.state == "ONLINE" or view.saw("ONLINE"), ONLINE_TIMEOUT_S, "ONLINE")
    return {"cluster_state": "ONLINE"}


async def run_wait_deploy(ctx: RunContext) -> dict:
    await _wait_for(ctx, lambda view: view.deploy_state in TASK_DONE_STATES, DEPLOY_TIMEOUT_S,
                    "cluster_deploy completed")
    follower = await _follower(ctx)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(follower), timeout=max(5.0, ctx.clock.wall_seconds(120)))
    return {"cluster_deploy": "COMPLETED"}


async def run_verify(ctx: RunContext) -> dict:
    vms = await vms_client(ctx)
    hosts = await vms.hosts()
    cnodes, dnodes = await vms.cnodes(), await vms.dnodes()
    status, out = await _user(ctx, "docker ps --format '{{.Names}}\t{{.Status}}'")
    containers = [dict(zip(("name", "status"), line.split("\t", 1), strict=False)) for line in out.splitlines() if line]
    names = {c["name"] for c in containers}
    problems = [f"host {h.get('host_label') or h.get('name')} is {h.get('install_state')}"
                for h in hosts if str(h.get("install_state", "")).upper() != "INSTALLED"]
    problems += [f"container {name} is not running" for name in CONTAINERS if name not in names]
    if not any(name.startswith("vast_platform") for name in names):
        problems.append("no vast_platform containers run")
    summary = [{"name": h.get("host_label") or h.get("name"), "node_type": h.get("node_type"),
                "install_state": h.get("install_state")} for h in hosts]
    ctx.emit(ClusterVerified(hosts=summary, containers=containers, ok=not problems))
    ctx.progress(f"{len(hosts)} hosts, {len(cnodes)} CNodes, {len(dnodes)} DNodes, {len(containers)} containers")
    if problems:
        raise RunFailed("the cluster is ONLINE but not healthy: " + "; ".join(problems))
    return {"outcome": "online"}


def steps() -> list[Step]:
    return [
        Step("monitor", "Start the monitoring agent", "install", run_monitor, recheck_monitor, needs=GUEST_NEEDS),
        Step("system_checks", "System checks", "install", run_system_checks, needs=GUEST_NEEDS, produces=("mgmt_ip", "mgmt_iface")),
        Step("docker", "Docker readiness", "install", run_docker, needs=GUEST_NEEDS),
        Step("network", "Network configuration", "install", run_network, needs=GUEST_NEEDS),
        Step("vast_dirs", "VAST directories, registry and release file", "install", run_vast_dirs, needs=GUEST_NEEDS),
        Step("ssh_keys", "SSH key for the VAST tools", "install", run_ssh_keys, needs=GUEST_NEEDS),
        Step("cleanup", "Clean up a previous install", "install", run_cleanup, needs=GUEST_NEEDS),
        Step("bootstrap", "VAST bootstrap", "install", run_bootstrap, needs=GUEST_NEEDS),
        Step("cluster_create", "Create the loopback cluster", "install", run_cluster_create, needs=GUEST_NEEDS),
        Step("wait_online", "Wait for ONLINE", "install", run_wait_online, needs=GUEST_NEEDS),
        Step("wait_deploy", "Wait for cluster_deploy", "install", run_wait_deploy, needs=GUEST_NEEDS),
        Step("verify", "Verify hosts and containers", "install", run_verify, needs=GUEST_NEEDS, produces=("outcome",)),
    ]
