"""The VAST tools' timelines: what each tool prints, does and changes in the world, and when.

A timeline is a list of steps, each at an offset in lab seconds from the tool's start:
    {"at": s, "out": text, "stamp": s0}   write text (template, see below) to stdout
    {"at": s, "event": {...}}             append a world event (kind + fields) to the events file
    {"at": s, "docker": [args...]}        run the guest's docker with these arguments
    {"at": s, "file": path, "text": t}    append text (template) to a file in the guest
                                          (with "replace": true, the file gets that text alone)
    {"at": s, "kmsg": [[prio, text]...]}  append kernel messages to the guest's /dev/kmsg file
    {"at": s, "vms_tls": true}            the VMS makes its TLS certificate where the scenario says,
                                          unless it has one already
    {"at": s, "exit": code}               end the tool with this status
Templates use `${name}` variables the player fills in at run time: `ts` ("[YYYY-mm-dd HH:MM:SS]" of
the step's `stamp` offset, default `at`), `vts` (vman's "[... : <run uuid>]"), `vts0` (vman's stamp
before it has a uuid), `ip`, `name`, `build`, `buildno`, `pem`, `vcli_args`, `ptime` (PANIC time with
nanoseconds). Timestamps are lab time of the step's schedule, so a compressed run prints the field
timeline at any speed.

The success schedule is the field run's (install log vast_install_final.log, 2025-12-29): bootstrap
18:32:13 -> 18:47:00 (887 s, milestones placed from the container starts seen in docker_stats.log
and dmesg_live.log), cluster create 18:47:00 -> 19:04:54 (1074 s): INIT at +90 s, ACTIVATING at
+99 s, ONLINE at +740 s, cluster_deploy succeeded at +1068 s. The failure schedules follow the
field's attempts: overcommit from the support case summary of attempt 2 (ACTIVATING -> UNKNOWN
+117 s -> INIT +174 s -> UNKNOWN +180 s, PANIC +1058 s, cluster_deploy FAILED +1062 s, INIT +1067 s);
oom from attempt 1 (the OOM killer during activation, the cluster stuck in INIT; its times are
modelled: the kill comes when the field's memory ramp crosses the guest's memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.lab import facts

SPIN_CHARS = "\\|/-"
SPIN_PERIOD_S = 2.1  # the field log repaints its spinner about every 2.1 s (306 frames in 641 s)
REGISTRY = "vastdata.registry.local:5000"
IMAGE = REGISTRY + "/dev/orion:${build}"
VMS_IMAGE = IMAGE + "-vms"
# vman.sh's own volume mounts; `${extra_mounts}` (the player fills it in) adds EXTRA_VOLUME_MOUNTS when
# the caller exported it, as the field's script did (" -v /file_server:/file_server"; see facts.py).
VOLUMES = (
    "-v /vast/data:/vast/data -v /vast/deploy:/vast/deploy -v /vast/vman:/vast/vman "
    "-v /vast/bundles:/vast/bundles:rshared -v /dev:/dev -v /var/run/postgresql:/var/run/postgresql "
    "-v /vast/log:/vast/log -v /run/ipmitool-cache:/run/ipmitool-cache -v /var/lib/vast:/var/lib/vast "
    "-v /var/run/docker.sock:/var/run/docker.sock"
)
COMMON = (
    "--net=host --privileged --cap-add=SYS_ADMIN --cap-add=NET_ADMIN -e DISABLE_IPV6_FOR_LOOPBACK=yes "
    "-e SYSTEM_NUMBER=1 --cpus=4 --cpuset-cpus=0-3,6-9 --label=owner=vman -e REMOTE_REPOSITORY=dev/orion "
    + VOLUMES
)
# The loopback cluster's four nodes: (container port, node type, name).
NODES = (("4100", "CNODE", "cnode-1"), ("4200", "CNODE", "cnode-2"),
         ("4300", "DNODE", "dnode-1"), ("4400", "DNODE", "dnode-2"))
INTERNAL_IP = "11.0.0.1"
DEPLOY_TASK_ID = 2  # the field's cluster_deploy is task 2


def container(port: str) -> str:
    return f"vast_platform_{INTERNAL_IP}-{port}"


@dataclass
class Timeline:
    """Builds a tool's steps; keeps the spinner's state so repaints look like the field log's."""

    steps: list[dict] = field(default_factory=list)
    _spin_index: int = 0
    _spinning: bool = False  # a spinner line is open (its frames written, its end not yet)

    def _add(self, at: float, **step: object) -> None:
        self.steps.append({"at": round(float(at), 3), **step})

    def raw(self, at: float, text: str, stamp: float | None = None) -> None:
        """Text exactly as given (vman's own lines end in \\n)."""
        self._close_spinner(at)
        step: dict = {"out": text}
        if stamp is not None:
            step["stamp"] = round(stamp, 3)
        self._add(at, **step)

    def line(self, at: float, text: str) -> None:
        """One vcli line, stamped with its time; vcli runs under `docker run -t`, hence \\r\\n."""
        self.raw(at, "${ts} " + text + "\r\n")

    def plain(self, at: float, text: str) -> None:
        self.raw(at, text + "\r\n")

    def spin(self, at: float, until: float, text: str) -> None:
        """A spinner line repainted from `at` until `until` (one frame at least), stamped `at`."""
        if self._close_spinner(at):
            self._add(at, out="\r\n")  # the field log leaves an empty line between two spinners
        count = max(1, round((until - at) / SPIN_PERIOD_S))
        for k in range(count):
            char = SPIN_CHARS[self._spin_index % len(SPIN_CHARS)]
            self._spin_index += 1
            self._add(at + k * (until - at) / count, out=f"\r${{ts}} {text} ... {char}", stamp=round(at, 3))
        self._spinning = True

    def completed(self, at: float, text: str = "Completed") -> None:
        if self._close_spinner(at):
            self._add(at, out="\r\n")
        self._add(at, out=text + "\r\n")

    def _close_spinner(self, at: float) -> bool:
        if not self._spinning:
            return False
        self._spinning = False
        self._add(at, out="\r\n")
        return True

    def event(self, at: float, kind: str, **fields: object) -> None:
        self._add(at, event={"kind": kind, **fields})

    def docker(self, at: float, *args: str) -> None:
        self._add(at, docker=list(args))

    def container(self, at: float, name: str, *run_args: str) -> None:
        """(Re)start container `name`: the tools remove a leftover one first (a failure is ignored)."""
        self.docker(at, "rm", "-f", name)
        self.docker(at, "run", "-d", "--name", name, *run_args)

    def append(self, at: float, path: str, text: str) -> None:
        self._add(at, file=path, text=text)

    def write(self, at: float, path: str, text: str) -> None:
        self._add(at, file=path, text=text, replace=True)

    def vms_certificate(self, at: float) -> None:
        self._add(at, vms_tls=True)

    def kmsg(self, at: float, messages: list[tuple[int, str]]) -> None:
        self._add(at, kmsg=[[prio, text] for prio, text in messages])

    def exit(self, at: float, code: int) -> None:
        self._close_spinner(at)
        self._add(at, exit=code)

    def sorted(self) -> list[dict]:
        return sorted(self.steps, key=lambda step: step["at"])  # stable: same-time steps keep their order


# --- bootstrap ---------------------------------------------------------------------------------

BOOTSTRAP_S = 887.0  # 18:32:13 -> 18:47:00
VMS_UP_AT = 848.0  # "Done, VMS is up": vast_vms had reached its working size (5.45 GiB at +847 s)


def bootstrap() -> list[dict]:
    """vast_bootstrap.sh: the same in every scenario (the hardware only matters from activation on).

    Milestones from the field traces: the registry container first appears at +232 s and is
    restarted at +617..624 s; vast_vms starts at +630 s (a loop device and its filesystem are mounted
    at +629 s) and is restarted at +720 s (dummy0/dummy1 come up at +721 s); mcvms starts at +788 s;
    bootstrap ends at +887 s. The "starting VMS" progress lines sit between those starts."""
    t = Timeline()
    t.event(0, "reset")  # a bootstrap starts a new VMS: whatever an earlier one knew is gone
    t.raw(0, "Taking first package\n"
             "using package ./vastdata_release_${buildno}.vast.tar.gz\n"
             "using build ${buildno}\n"
             "unpacking ./vastdata_release_${buildno}.vast.tar.gz\n")
    t.container(232, "registry", "--restart=always", "-p", "5000:5000", "-v", "/vast/registry:/var/lib/registry",
                "registry:2")
    t.raw(617, "starting VMS \n")
    t.docker(617, "restart", "registry")
    t.vms_certificate(630)  # its first start makes the VMS's certificate (backend/lab/facts.py)
    t.container(630, "vast_vms", "--rm", *COMMON.split(), VMS_IMAGE, "vms")
    t.write(630, facts.VMS_IMAGE_FILE, VMS_IMAGE + "\n")  # what start_vms.sh copies into cnode-1 (facts.py)
    t.raw(690, "starting VMS ---- 30% done\n")
    t.docker(720, "restart", "vast_vms")
    t.raw(755, "starting VMS ---- 60% done\n")
    t.container(788, "mcvms", "--net=host", "-v", "/vast/vman:/vast/vman", VMS_IMAGE, "mcvms")
    t.raw(789, "No infiniband interfaces detected, Skipping OpenSM first time configuration\n")
    t.raw(VMS_UP_AT, "Done, VMS is up \n")
    t.event(VMS_UP_AT, "vms", up=True)
    t.raw(850, "discovering hosts..\n")
    t.raw(886, "bootstrap finished, please connect at https://${ip}\n")
    t.exit(BOOTSTRAP_S, 0)
    return t.sorted()


# --- cluster create ----------------------------------------------------------------------------

CREATE_S = 1074.0  # 18:47:00 -> 19:04:54
DEPLOY_START = 4.0  # "Deploying Cluster" at 18:47:04; runtime 1064.11 s -> succeeded at +1068.11 s
INIT_AT = 90.0  # 18:48:30
ACTIVATING_AT = 99.0  # 18:48:39
ONLINE_AT = 740.0  # 18:59:20
DEPLOY_DONE_AT = 1068.11  # 19:04:48


def _vman_preamble(t: Timeline, command: str) -> None:
    t.raw(0, f"${{vts0}} Starting vman.sh with '{command}' command\n"
             "${vts0} System number: 1\n"
             "sudo: ipmitool: command not found\n"
             "${vts} CPUSET=0-3,6-9\n"
             "${build}\n"
             '${vts} "${build}" and "${build}-vms" already imported skipping import from files.\n'
             "\n"
             f"IMAGE: {IMAGE}\n"
             f"VMS_IMAGE: {VMS_IMAGE}\n"
             "\n"
             f"${{vts}} Using VOLUME_MOUNTS: {VOLUMES}${{extra_mounts}}\n"
             "${extra_mounts_warning}"
             f"COMMON_PARAMS : {COMMON}${{extra_mounts}}\n"
             f"${{vts}} ./vman.sh {VMS_IMAGE} ${{pem}} ${{vcli_args}}\n"
             f"Registry {REGISTRY} already present in daemon.json\n"
             "${vts} Registry container already up\n")


def _vman_epilogue(t: Timeline, at: float, command: str) -> None:
    t.raw(at, "\x1b[?25h\x1b[0m\x1b[0m"
              "${vts} Command is not 'start,' mc vms container will not be started.\n"
              if command != "start" else "${vts} Starting mc vms container\n")
    t.raw(at, "${vts} Finished docker command\n"
              "${vts} Stopping dummy NFS server\n"
              "Redirecting to /bin/systemctl stop nfs-server.service\n")
    t.raw(at + 1, "${vts} Removing dummy local route to inner VIP\n"
                  "RTNETLINK answers: No such process\n")


def _platform_containers(t: Timeline, at: float, restart: str) -> None:
    """The four node containers; `restart` is their Docker restart policy ("no": none; facts.py
    PLATFORM_RESTART_POLICY says why the lab has two answers)."""
    policy = () if restart == "no" else (f"--restart={restart}",)
    for port, _, _ in NODES:
        t.container(at, container(port), *COMMON.split()[:2], *policy, IMAGE, "platform")


def _deploy_until_activating(t: Timeline, restart: str) -> None:
    """The part of `cluster create` every scenario shares: install, create, format, INIT, ACTIVATING."""
    _vman_preamble(t, "vcli")
    t.raw(0, "${vts} Starting new container for vcli\n"
             "${vts} Starting docker command\n"
             f"${{vts}} starting run --rm {COMMON}${{extra_mounts}} --label=role=cli -t {VMS_IMAGE} "
             "/vast/install/management/scripts/vman '${vcli_args}'\n")
    t.plain(0, "Using host ${ip}")
    for what in ("ca cert", "cert", "key"):
        t.plain(0, f"EKM: getting {what}")
        t.plain(0, "EKM: empty path")
    t.plain(0, "EKM: no cert and no key")
    t.plain(0, "Creating Cluster ${name}...")
    t.plain(0, "\x1b[?25l")
    t.plain(0, "Waiting ... ")
    t.event(DEPLOY_START, "vtask", id=DEPLOY_TASK_ID, name="cluster_deploy", state="RUNNING")
    t.event(DEPLOY_START, "cluster", state="INSTALLING", name="${name}", build="${build}", mgmt_ip="${ip}")
    t.line(DEPLOY_START, "============ Deploying Cluster ============")
    t.spin(DEPLOY_START, 18, "Installing ${build}")
    t.spin(18, 18, "deploy cluster with nvram section layout = DEFAULT")
    t.line(18, "============ Cluster Install ============")
    t.line(18, "installing cluster")
    for kind in ("Cnode", "Cnode", "Dnode", "Dnode"):
        t.line(18, f"{kind} ({INTERNAL_IP}) []: adding terminate container task")
    for kind in ("Cnode", "Cnode", "Dnode", "Dnode"):
        t.line(19, f"{kind} ({INTERNAL_IP}) []: terminating container")
    for kind in ("Cnode", "Dnode", "Dnode"):
        t.line(19, f"{kind} ({INTERNAL_IP}) [] terminated container")
    t.spin(19, 19, f"Cnode ({INTERNAL_IP}) [] terminated container")
    hosts = [{"label": f"{INTERNAL_IP}-{port}", "node_type": kind, "install_state": "INSTALLING"}
             for port, kind, _ in NODES]
    t.event(22, "hosts", hosts=hosts)
    for kind in ("Dnode", "Cnode", "Dnode"):
        t.line(22, f"Installing build ${{build}} on {kind} ({INTERNAL_IP}) [] with perf_check False")
    t.spin(22, 36, f"Installing build ${{build}} on Cnode ({INTERNAL_IP}) [] with perf_check False")
    for kind in ("Dnode", "Dnode", "Cnode"):
        t.line(36, f"Installed build ${{build}} on {kind} ({INTERNAL_IP}) []")
    _platform_containers(t, 37, restart)  # the four containers show up in docker stats at +38 s
    t.event(37, "hosts", hosts=[dict(h, install_state="INSTALLED") for h in hosts])
    t.spin(37, 57, f"Installed build ${{build}} on Cnode ({INTERNAL_IP}) []")
    t.spin(57, 67, "finished installing cluster")
    t.spin(67, 84, "creating cluster ${name}")
    t.line(84, "Disabling vms_election until deploy ends")
    t.line(84, "============ Creating CNodes ============")
    for index, (port, kind, name) in enumerate(NODES):
        at = 84 if index == 0 else 85
        if name == "dnode-1":
            t.line(85, "============ Creating DNodes ============")
        t.event(at, "node", node_type=kind.lower(), name=name, label=f"{INTERNAL_IP}-{port}", state="INACTIVE")
        suffix = f"internal ip: {INTERNAL_IP}" if kind == "CNODE" else f"(internal ip: {INTERNAL_IP})"
        text = f"Created {name} ({INTERNAL_IP}) [] {suffix}"
        if name == "dnode-2":
            t.spin(85, INIT_AT, text)
        else:
            t.line(at, text)
    t.line(INIT_AT, "formatting cluster ${name}")
    for port in ("4400", "4200", "4300"):
        t.line(INIT_AT, f"Removing vsettings file on node {INTERNAL_IP}-{port}")
    t.spin(INIT_AT, INIT_AT, f"Removing vsettings file on node {INTERNAL_IP}-4100")
    for port in ("4400", "4200", "4100", "4300"):
        t.line(INIT_AT, f"Removed vsettings file on node {INTERNAL_IP}-{port}")
    t.line(INIT_AT, "============ Finishing Cluster Deploy ============")
    t.event(INIT_AT, "cluster", state="INIT", leader_state="UP")
    t.spin(INIT_AT, ACTIVATING_AT, "Cluster ${name} state: INIT")
    t.event(ACTIVATING_AT, "cluster", state="ACTIVATING")
    for _, kind, name in NODES:
        t.event(ACTIVATING_AT, "node", node_type=kind.lower(), name=name, state="ACTIVATING")


def _online(t: Timeline, until: float) -> None:
    """ACTIVATING -> ONLINE at the field's time, then "Waiting for cluster DB creation" until `until`."""
    t.spin(ACTIVATING_AT, ONLINE_AT, "Cluster ${name} state: ACTIVATING")
    t.event(ONLINE_AT, "cluster", state="ONLINE")
    for _, kind, name in NODES:
        t.event(ONLINE_AT, "node", node_type=kind.lower(), name=name, state="ACTIVE")
    t.spin(ONLINE_AT, 742, "Cluster ${name} state: ONLINE")
    t.spin(742, until, "Waiting for cluster DB creation")


def _deploy_done(t: Timeline) -> None:
    """The field run's end of `cluster create`: certificates, license, the task succeeded, exit 0."""
    t.line(1064, "Default Cluster S3 certificates were set successfully")
    t.line(1064, "Distribute native rep certificates set successfully")
    t.spin(1065, 1066, "Default password for Indestructibility was set successfully")
    t.event(1066, "license", state="ACTIVE")
    t.line(1066, "Trial license was created successfully")
    t.line(1066, "Created Cluster ${name}")
    t.line(1066, "Create ssh by hostname config files")
    t.spin(1068, DEPLOY_DONE_AT, "Launching post cluster deploy actions in a separate task")
    runtime = DEPLOY_DONE_AT - DEPLOY_START
    t.event(DEPLOY_DONE_AT, "vtask", id=DEPLOY_TASK_ID, name="cluster_deploy", state="COMPLETED",
            runtime=round(runtime, 2))
    t.spin(DEPLOY_DONE_AT, DEPLOY_DONE_AT, f"Task cluster_deploy ({DEPLOY_TASK_ID}) succeeded (runtime={runtime:.2f})")
    t.completed(1068.5)
    _vman_epilogue(t, 1073, "vcli")
    t.exit(CREATE_S, 0)


def create_success(restart: str = "no") -> list[dict]:
    t = Timeline()
    _deploy_until_activating(t, restart)
    _online(t, 1064)
    _deploy_done(t)
    return t.sorted()


def _deploy_failed(t: Timeline, at: float, state: str, message: str, task_failed_at: float | None = None) -> None:
    """vcli reports the failed task (which failed at `task_failed_at`, default `at`) and gives up."""
    failed_at = at if task_failed_at is None else task_failed_at
    runtime = failed_at - DEPLOY_START
    t.event(failed_at, "vtask", id=DEPLOY_TASK_ID, name="cluster_deploy", state="FAILED", runtime=round(runtime, 2),
            message=message)
    t.spin(at, at, f"Task cluster_deploy ({DEPLOY_TASK_ID}) failed (runtime={runtime:.2f})")
    t.completed(at + 0.5, f"Error: Task cluster_deploy failed: {message} (cluster ${{name}} state: {state})")
    _vman_epilogue(t, at + 5, "vcli")
    t.exit(at + 6, 1)


# overcommit: offsets after ACTIVATING from the support case summary of attempt 2 (10:39:56 ACTIVATING)
UNKNOWN_AFTER = 117.0  # 10:41:53
REINIT_AFTER = 174.0  # 10:42:50
UNKNOWN_AGAIN_AFTER = 180.0  # 10:42:56
PANIC_AFTER = 1058.0  # 10:57:34
FAILED_AFTER = 1062.0  # 10:57:38
INIT_AFTER_PANIC = 1067.0  # 10:57:43
PANIC_FIBER_AGE_US = 245_385_178  # time_since_started of the panicking fiber

PANIC_TEXT = (
    'PANIC[P653:E9:S255:F28d time="${ptime}"]\n'
    "===FIBER=0x7fcb99c3ddd0 group=E_VMSG_POLLING_VMSG_KEEP_ALIVE (365) module=E (0)\n"
    "fiber_id=P00013:E008:S000:F00000019 parent_job_id=F9 state=2 daemon=1 join_count=0\n"
    "anchor=(nil) gtsk_id=0xffffffffffffffff locker_index=22 is_suspended=0\n"
    f"time_in_suspend=0us (~0.00s) time_since_started={PANIC_FIBER_AGE_US}us (~{PANIC_FIBER_AGE_US / 1e6:.2f}s)\n"
    "data_bytes_allocated=0\n"
    "\n"
    "===BEGIN TRACEBACK===\n"
    "0x0000000007ce83b4 P::error_handler at src/plasma/execution/env.cpp:3428\n"
    "0x0000000007c3f0a2 P::Silo::test_if_stuck at src/plasma/execution/silo.cpp:959\n"
    "0x000000000948b924 P::VMsg::VMsg::send_async at src/plasma/vmsg/vmsg.cpp:2072\n"
    "0x0000000009487aeb P::VMsg::VMsg::send_keepalive at src/plasma/vmsg/vmsg.cpp:376\n"
    "0x0000000009498840 P::VMsg::VMsg::send_all_keepalive at src/plasma/vmsg/vmsg.cpp:484\n"
    "0x0000000009498840 P::VMsg::vmsg_keepalive_fiber at src/plasma/vmsg/vmsg.cpp:512\n"
    "0x0000000007cfe7de P::Fiber::main at src/plasma/fiber/fiber.cpp:268\n"
    "===FINISH TRACEBACK=== (11 hidden frames)\n"
)
LEADER_ERROR = (
    "${ts} ERROR Cluster Leader connection end-point ('11.0.0.1', 6001, 1) error\n"
    "${ts} ERROR Failed to connect to address=11.0.0.1:6001 after 3 attempts.\n"
)


def create_overcommit(restart: str = "no") -> list[dict]:
    t = Timeline()
    _deploy_until_activating(t, restart)
    a = ACTIVATING_AT
    changes = ((a + UNKNOWN_AFTER, "UNKNOWN", "UNKNOWN"), (a + REINIT_AFTER, "INIT", "UP"),
               (a + UNKNOWN_AGAIN_AFTER, "UNKNOWN", "UNKNOWN"))
    spin_from, state = a, "ACTIVATING"
    for at, new_state, leader in changes:
        t.spin(spin_from, at, f"Cluster ${{name}} state: {state}")
        t.event(at, "cluster", state=new_state, leader_state=leader)
        spin_from, state = at, new_state
    for _, kind, name in NODES[1::2]:  # cnode-2 and dnode-2 fall out (their containers restart)
        t.event(a + UNKNOWN_AFTER, "node", node_type=kind.lower(), name=name, state="FAILED")
    at = a + UNKNOWN_AFTER - 5
    while at < a + PANIC_AFTER:  # the VMS keeps losing the cluster leader on TCP 6001
        t.append(at, "/vast/vman/vms/log/vms.log", LEADER_ERROR)
        at += 30
    panic_at = a + PANIC_AFTER
    t.append(panic_at, "/vast/vman/vms/log/workers.log", PANIC_TEXT)
    t.event(panic_at, "panic", code="P653", node="dnode-2", where="vmsg_keepalive_fiber")
    t.spin(spin_from, a + INIT_AFTER_PANIC, f"Cluster ${{name}} state: {state}")
    t.event(a + INIT_AFTER_PANIC, "cluster", state="INIT", leader_state="UP")
    t.spin(a + INIT_AFTER_PANIC, a + INIT_AFTER_PANIC + 1, "Cluster ${name} state: INIT")
    _deploy_failed(t, a + INIT_AFTER_PANIC + 1, "INIT",
                   "PANIC[P653] on dnode-2 in vmsg_keepalive_fiber", task_failed_at=a + FAILED_AFTER)
    return t.sorted()


# oom: the kill comes when the activation's memory ramp crosses the guest's memory (see curves.py);
# what follows is modelled on the field notes of attempt 1 (cluster stuck in INIT, deploy failed).
OOM_INIT_AFTER = 40.0  # the cluster drops back to INIT after the killed node
OOM_SECOND_KILL_AFTER = 95.0  # the restarted node grows into the same wall
OOM_FAILED_AFTER = 300.0  # the deploy task gives up


def oom_messages(pid: int, process: str, total_vm_kb: int, anon_rss_kb: int, cgroup: str) -> list[tuple[int, str]]:
    """Kernel messages of one OOM kill, in the shape Rocky 8's 4.18 kernel writes them."""
    return [
        (4, f"{process} invoked oom-killer: gfp_mask=0x6280ca(GFP_HIGHUSER_MOVABLE|__GFP_ZERO), order=0, "
            "oom_score_adj=0"),
        (4, f"CPU: 7 PID: {pid} Comm: {process} Not tainted 4.18.0-553.56.1.el8_10.x86_64 #1"),
        (4, "Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS rel-1.17.0-0-gb52ca86e094d-prebuilt.qemu.org"
            " 04/01/2014"),
        (6, "Mem-Info:"),
        (6, "Tasks state (memory values in pages):"),
        (6, f"oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,"
            f"task_memcg=/docker/{cgroup},task={process},pid={pid},uid=0"),
        (3, f"Out of memory: Killed process {pid} ({process}) total-vm:{total_vm_kb}kB, anon-rss:{anon_rss_kb}kB, "
            f"file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:{anon_rss_kb // 512}kB oom_score_adj:0"),
        (6, f"oom_reaper: reaped process {pid} ({process}), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB"),
    ]


def _oom_killed(name: str) -> tuple[str, str, str]:
    """What Docker says of a node container whose main process the global OOM killer killed: its
    name, exit code and State.OOMKilled (`docker lab-oom-killed NAME EXIT OOMKILLED`)."""
    return name, str(facts.OOM_KILLED_EXIT_CODE), "true" if facts.DOCKER_OOMKILLED_ON_GLOBAL_OOM else "false"


def _kills(t: Timeline, oom_at: float) -> None:
    """The OOM killer's two kills: cnode-2 at `oom_at`, cnode-1 when its restart grows into the same wall."""
    t.kmsg(oom_at, oom_messages(41873, ".env", 61_204_112, 44_871_300, "4200" * 16))
    t.docker(oom_at, "lab-oom-killed", *_oom_killed(container("4200")))
    t.event(oom_at, "oom", process=".env", container=container("4200"))
    t.event(oom_at, "node", node_type="cnode", name="cnode-2", state="FAILED")
    second = oom_at + OOM_SECOND_KILL_AFTER
    t.kmsg(second, oom_messages(45120, ".env", 52_771_840, 36_902_212, "4100" * 16))
    t.docker(second, "lab-oom-killed", *_oom_killed(container("4100")))
    t.event(second, "oom", process=".env", container=container("4100"))
    t.event(second, "node", node_type="cnode", name="cnode-1", state="FAILED")


OOM_MESSAGE = "system_format did not complete: cnode processes were killed"


def create_oom(oom_at: float, restart: str = "no") -> list[dict]:
    """`oom_at`: offset (from the tool's start, after ACTIVATING) of the first kill: when the field's
    demand exceeds the guest's memory. Before ONLINE the cluster drops back to INIT (attempt 1);
    after it, it loses its leader (UNKNOWN; modelled: no field run was killed there) and the deploy
    fails; after the deploy finished (the field's peak came 17 min later), the tool has exited with
    success and the kills follow it (steps after the exit: the cluster goes on without the tool).
    `restart`: the node containers' Docker restart policy (see _platform_containers)."""
    t = Timeline()
    _deploy_until_activating(t, restart)
    if oom_at < ONLINE_AT:
        init_at = oom_at + OOM_INIT_AFTER
        t.spin(ACTIVATING_AT, init_at, "Cluster ${name} state: ACTIVATING")
        t.event(init_at, "cluster", state="INIT", leader_state="UP")
        _kills(t, oom_at)
        failed_at = oom_at + OOM_FAILED_AFTER
        t.spin(init_at, failed_at, "Cluster ${name} state: INIT")
        _deploy_failed(t, failed_at, "INIT", OOM_MESSAGE)
    elif oom_at < DEPLOY_DONE_AT:
        _online(t, oom_at)
        t.event(oom_at, "cluster", state="UNKNOWN", leader_state="UNKNOWN")
        _kills(t, oom_at)
        failed_at = oom_at + OOM_FAILED_AFTER
        t.spin(oom_at, failed_at, "Waiting for cluster DB creation")
        _deploy_failed(t, failed_at, "UNKNOWN", OOM_MESSAGE)
    else:
        _online(t, 1064)
        _deploy_done(t)
        t.event(oom_at, "cluster", state="UNKNOWN", leader_state="UNKNOWN")
        _kills(t, oom_at)
    return t.sorted()


# --- after a reboot: vman.sh start, and vms-bringup start inside cnode-1 (start_vms.sh) -----------

START_S = 75.0  # a start with no deployed cluster ends once the containers run
RESTART_VMS_CONTAINER_AT = 5.0


def _back_online(t: Timeline, vms_up_s: float, online_s: float) -> None:
    """VMS comes back and, with it, the cluster: ACTIVATING from the moment VMS answers (it never shows
    the ONLINE it had before the reboot), ONLINE again at `online_s` (facts.py RESTART_*)."""
    t.vms_certificate(RESTART_VMS_CONTAINER_AT)  # kept from the bootstrap (made again only if it is gone)
    t.container(RESTART_VMS_CONTAINER_AT, "vast_vms", "--rm", *COMMON.split(), VMS_IMAGE, "vms")
    t.event(RESTART_VMS_CONTAINER_AT, "cluster", state="ACTIVATING", leader_state="DOWN")
    for _, kind, name in NODES:
        t.event(RESTART_VMS_CONTAINER_AT, "node", node_type=kind.lower(), name=name, state="ACTIVATING")
    t.event(vms_up_s, "vms", up=True)
    t.event(online_s, "cluster", state="ONLINE", leader_state="UP")
    for _, kind, name in NODES:
        t.event(online_s, "node", node_type=kind.lower(), name=name, state="ACTIVE")


def start(cluster_deployed: bool, vms_up_s: float, online_s: float, restart: str = "no") -> list[dict]:
    """`vman.sh <build> <pem> start`: the containers come back; a deployed cluster comes ONLINE again."""
    t = Timeline()
    _vman_preamble(t, "start")
    if cluster_deployed:
        _back_online(t, vms_up_s, online_s)
    else:
        t.vms_certificate(RESTART_VMS_CONTAINER_AT)  # kept from the bootstrap (made again only if it is gone)
        t.container(RESTART_VMS_CONTAINER_AT, "vast_vms", "--rm", *COMMON.split(), VMS_IMAGE, "vms")
        t.event(vms_up_s, "vms", up=True)
    t.container(vms_up_s + 5, "mcvms", "--net=host", "-v", "/vast/vman:/vast/vman", VMS_IMAGE, "mcvms")
    _platform_containers(t, vms_up_s + 10, restart)
    end = online_s if cluster_deployed else START_S
    _vman_epilogue(t, end - 1, "start")
    t.exit(end, 0)
    return t.sorted()


def bringup(vms_up_s: float, online_s: float) -> list[dict]:
    """`/vast/bin/vms-bringup start` inside cnode-1 (what start_vms.sh runs): VMS is started again and
    the cluster comes back ONLINE. Its output is modelled (no field log of it exists)."""
    t = Timeline()
    t.raw(0, "vms-bringup: starting the VMS container\n")
    _back_online(t, vms_up_s, online_s)
    t.raw(vms_up_s, "vms-bringup: VMS is up\n")
    t.raw(online_s, "vms-bringup: cluster ${name} is ONLINE\n")
    t.exit(online_s, 0)
    return t.sorted()
