"""VAST after a boot of the guest: `start_vms.sh` as the field ran it, then ONLINE again.

The field run's install log ends with "After Reboot: Run: ./start_vms.sh" (ground-truth §10). That
script disables IPv6 on the management NIC, writes the management address to /vast/vman/mgmt-vip,
copies /vast/data/vms_image into cnode-1's container (vast_platform_11.0.0.1-4100) and runs
`vms-bringup start` inside it. `vast_vms` runs with `--rm`, so after a reboot it is gone and the VMS
API does not answer until VAST is started again. Whether start_vms.sh works after a reboot was never
tried in the field (ground-truth §16): `restart_vast` runs it, waits for ONLINE, and either way
emits `VastRestarted` with the evidence (the script's last lines, the VAST containers' states, the
last cluster state), so a failure is diagnosed (what failed, the evidence, what to do) instead of
waited out. The other way to restart VAST, `vman.sh <build> <pem> start` (vast.md §3), is named in
the remedy; it is not run on its own: the test is of start_vms.sh.

Used by the reboot test (backend/finish.py) and by whoever restores the `vast-online` snapshot,
which holds no RAM state (README: roll back, start the VM, run ./start_vms.sh, wait for ONLINE).
The script is written to the install user's home as `start_vms.sh`, where the field kept it.
"""

from __future__ import annotations

import asyncio

from backend import install
from backend.engine import RunContext
from backend.errors import RunFailed
from backend.events import VastRestarted
from backend.prepare import guest_client
from backend.shell import sh
from backend.vms import VmsUnreachable

START_VMS = "start_vms.sh"
CNODE_CONTAINER = "vast_platform_11.0.0.1-4100"  # cnode-1, where vms-bringup runs (the field script's)
VMS_CONTAINER = "vast_vms"
SCRIPT_TIMEOUT_S = 20 * 60  # target seconds for start_vms.sh
ONLINE_TIMEOUT_S = 30 * 60  # target seconds from start_vms.sh's end to ONLINE (the field's activation: 10 min 41 s)
OUTPUT_LINES = 8

START_VMS_SCRIPT = f"""#!/bin/bash
# start_vms.sh, written by vast-loopback: start VAST again after a boot of this VM, as the field's
# script of the same name did: IPv6 off on the management NIC, the management address in
# /vast/vman/mgmt-vip, the VMS image copied into cnode-1's container, `vms-bringup start` inside it.
# Run it as the install user, from anywhere; it stops at the first step that fails.
set -euo pipefail
container={CNODE_CONTAINER}
step() {{ printf 'start_vms.sh: %s\\n' "$*"; }}
mgmt_ip=$(hostname -I | awk '{{print $1}}')
mgmt_iface=$(ip -o -4 addr show | awk -v ip="$mgmt_ip" 'index($4, ip"/") == 1 {{print $2; exit}}')
step "management address ${{mgmt_ip:-none}} on ${{mgmt_iface:-no interface}}"
key=net.ipv6.conf.${{mgmt_iface:-none}}.disable_ipv6
if [ -n "$mgmt_iface" ] && [ "$(sysctl -n "$key" 2>/dev/null || echo none)" = 0 ]; then
    step "disabling IPv6 on $mgmt_iface"
    sudo -n sysctl -q -w "$key=1"
fi
rm -f /vast/vman/mgmt-vip-ivp6  # the field script's name for it
printf '%s\\n' "$mgmt_ip" > /vast/vman/mgmt-vip
step "copying /vast/data/vms_image into $container"
docker cp /vast/data/vms_image "$container:/vast/data/vms_image"
step "vms-bringup start in $container"
docker exec -e DISABLE_IPV6_FOR_LOOPBACK=yes "$container" \\
    bash -c 'sudo DISABLE_IPV6_FOR_LOOPBACK=yes /vast/bin/vms-bringup start'
step "done"
"""


async def install_script(ctx: RunContext) -> str:
    """Write start_vms.sh into the install user's home (0755); returns its path."""
    guest = await guest_client(ctx)
    path = f"{await guest.home()}/{START_VMS}"
    await guest.upload(START_VMS_SCRIPT.encode(), path, 0o755)
    return path


async def vast_containers(ctx: RunContext) -> list[dict]:
    """The VAST containers Docker knows (running or not): [{"name", "state"}]."""
    guest = await guest_client(ctx)
    result = await guest.run("docker ps -a --format '{{.Names}}\t{{.State}}' 2>&1")
    rows = []
    for line in result.stdout.splitlines():
        name, _, state = line.partition("\t")
        if name.startswith("vast_platform") or name in (VMS_CONTAINER, "mcvms", "registry"):
            rows.append({"name": name, "state": state.strip() or "unknown"})
    return sorted(rows, key=lambda row: row["name"])


def describe(containers: list[dict]) -> str:
    running = [c["name"] for c in containers if c["state"] == "running"]
    stopped = [f"{c['name']} {c['state']}" for c in containers if c["state"] != "running"]
    parts = [f"running: {', '.join(running) or 'none'}"]
    if stopped:
        parts.append(f"not running: {', '.join(stopped)}")
    if not any(c["name"] == VMS_CONTAINER for c in containers):
        parts.append(f"no {VMS_CONTAINER} container")
    return "; ".join(parts)


async def _vms_answers(ctx: RunContext) -> bool:
    try:
        return await (await install.vms_client(ctx)).reachable()
    except (VmsUnreachable, RunFailed):
        return False


async def wait_online(ctx: RunContext, timeout_s: float = ONLINE_TIMEOUT_S) -> str:
    """Poll VMS until the cluster is ONLINE or `timeout_s` passed; returns the last state seen ("" when
    VMS never answered). States are journaled as `ClusterStateChanged` (source "api")."""
    started = ctx.clock.now()
    last = ""
    while ctx.clock.now() - started <= timeout_s:
        if await _vms_answers(ctx):  # one quiet attempt: no retry events while VMS is still coming up
            try:
                cluster = await (await install.vms_client(ctx)).cluster()
            except VmsUnreachable:
                cluster = None
            if cluster and cluster.get("state"):
                last = str(cluster["state"])
                install.note_cluster_state(ctx, last, "api")
                if last == "ONLINE":
                    return last
        await install.poll_sleep(ctx)
    return last


async def restart_vast(ctx: RunContext, boot_id: str, booted_at: float) -> dict:
    """Run start_vms.sh in this boot (once: a resumed run re-attaches to it) and wait for ONLINE.
    Emits `VastRestarted`; raises RunFailed with the problem when VAST did not come back."""
    alternative = install.vman_start_command(ctx.answers.vast.build)
    after_boot = await vast_containers(ctx)
    answering = await _vms_answers(ctx)
    ctx.progress(f"after the boot: {describe(after_boot)}; VMS {'answers' if answering else 'does not answer'}")
    script = await install_script(ctx)
    guest = await guest_client(ctx)
    job_id = f"start_vms-{(boot_id or 'boot')[:8]}"  # one job per boot: a second boot runs it again
    job = await guest.run_detached(job_id, f"cd {sh(script.rsplit('/', 1)[0])} && ./{START_VMS}")
    ctx.progress(f"running {START_VMS} (as the field's install log says to after a reboot)")
    try:
        status: int | None = await asyncio.wait_for(install.follow_job(ctx, job, job_id),
                                                    timeout=ctx.clock.wall_seconds(SCRIPT_TIMEOUT_S))
    except asyncio.TimeoutError:
        status = None

    def failed(problem: str, state: str = "", containers: list[dict] | None = None) -> RunFailed:
        ctx.emit(VastRestarted(how=START_VMS, ok=False, problem=problem, exit_status=status, cluster_state=state,
                               output=install.log_lines(ctx, job_id, OUTPUT_LINES),
                               containers=containers if containers is not None else after_boot,
                               alternative=alternative))
        return RunFailed(f"VAST did not come back after the reboot: {problem}",
                         hint=f"the vast-online snapshot was not taken; on the guest, try `{alternative}`")

    if status is None:
        raise failed(f"{START_VMS} did not end within {SCRIPT_TIMEOUT_S // 60} min",
                     containers=await vast_containers(ctx))
    if status != 0:
        last = (install.log_lines(ctx, job_id, 1) or ["no output"])[0]
        raise failed(f"{START_VMS} ended with exit {status}: {last}", containers=await vast_containers(ctx))
    ctx.progress(f"{START_VMS} ended with exit 0; waiting for the cluster to come ONLINE again")
    state = await wait_online(ctx)
    containers = await vast_containers(ctx)
    if state != "ONLINE":
        seen = f"the last state VMS reported was {state}" if state else "VMS did not answer"
        raise failed(f"{START_VMS} ended with exit 0 but the cluster was not ONLINE within "
                     f"{ONLINE_TIMEOUT_S // 60} min ({seen})", state, containers)
    down = [c["name"] for c in containers if c["state"] != "running"
            and (c["name"] == VMS_CONTAINER or c["name"].startswith("vast_platform"))]
    if down or not any(c["name"] == VMS_CONTAINER for c in containers):
        raise failed(f"VMS says ONLINE but not every VAST container runs ({describe(containers)})", state,
                     containers)
    if not any(c["name"] == "mcvms" and c["state"] == "running" for c in containers):
        ctx.progress(f"mcvms (the multi-cluster VMS API) is not running: {START_VMS} does not start it, "
                     "`vman.sh <build> <pem> start` does; the cluster itself is ONLINE")
    online_after = round(ctx.clock.now() - booted_at, 1)
    ctx.emit(VastRestarted(how=START_VMS, ok=True, exit_status=status, cluster_state=state,
                           online_after_s=online_after, output=install.log_lines(ctx, job_id, OUTPUT_LINES),
                           containers=containers, alternative=alternative))
    return {"restarted_with": START_VMS, "online_after_reboot_s": online_after}
