"""The demo's hints: one short sentence, from the run's state, about what to look at now.

Shown only when the wizard runs as `vast-loopback demo` (or a replay asked for them). The scenario
(success, oom, overcommit) decides what the failure hints point at. Plain Python, no Textual.
"""

from __future__ import annotations

from tui.session import RunSession

SCENARIO_CAUSE = {  # the blocker the presenter overrode, in a few words
    "oom": "a 100 GiB VM, its guest 97 GB",
    "overcommit": "24 vCPUs on 12 cores",
}


def demo_hint(session: RunSession, scenario: str, *, on_result: bool = False) -> str:
    state = session.state
    cause = SCENARIO_CAUSE.get(scenario, "")
    if session.end is not None:
        if session.failed:
            why = f"Why: the blocker you overrode ({cause})." if cause else "The diagnosis explains it."
            if on_result:
                can_retry = session.remedies and session.retrier is not None
                return why + (" r retries with the fix." if can_retry else "")
            return "Enter: the diagnosis. " + why
        if state.cluster_state.upper() == "ONLINE" and session.attempt > 1:
            return f"ONLINE on attempt {session.attempt}: the rollback and the diagnosed remedy fixed it."
        if state.cluster_state.upper() == "ONLINE":
            return ("ONLINE. The report compares this run with the field report's 32 min 41 s."
                    if on_result else "ONLINE. Enter shows the result and the report.")
        return ""
    if session.diagnoses:
        worst = sorted(session.diagnoses.values(), key=lambda d: d.get("severity") != "critical")[0]
        short = str(worst.get("cause", "")).split(":")[0]
        return f"Diagnosis: {short}. " + (f"Why: the blocker you overrode ({cause})." if cause
                                          else "d shows the evidence.")
    cluster = state.cluster_state.upper()
    step = state.current_step
    if cluster == "ACTIVATING":
        if scenario == "oom":
            return f"MemAvailable is falling toward the OOM line: {cause} is not enough."
        if scenario == "overcommit":
            return f"Watch steal climb and the heartbeat gaps grow: {cause}."
        return "Activation is the hard part: MemAvailable falls (1.2 GiB at worst in the field run)."
    if cluster == "ONLINE":
        return "ONLINE: the cluster is up; the snapshot and the report follow."
    if step is None:
        return ""
    if "bootstrap" in step.id:
        return "Bootstrap: the containers load; steal may spike (26.7 % in the field run)."
    if step.group == "install":
        return "The install runs detached in the guest: the panes follow its log and the monitor."
    if step.group == "prepare":
        if session.state.tuning:
            return "Each tuning is read back from the guest; ↻✓: it survived the reboot."
        return "Tuning the guest as the field engineer did by hand: THP off, mq-deadline, sysctls."
    if step.group == "provision":
        return "Creating the VM with the sizing you chose; it first boots on a controller the OVA's kernel can use."
    return ""
