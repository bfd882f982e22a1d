"""The plan: the ordered steps of a run, from connecting to Proxmox to the report.

provision (backend/steps/provision.py): connect, size, check the OVA, create the VM, first boot
prepare   (backend/steps/prepare.py):   tune the guest, switch the controller, reboot, verify, preflight,
                                   snapshot pre-install
install   (backend/steps/install.py):   the VAST install phases, up to ONLINE and cluster_deploy done
finish    (backend/steps/finish.py):    snapshot the installed cluster, write the report
"""

from __future__ import annotations

from backend.run.engine import Step
from backend.steps import finish, install, prepare, provision

UNTIL_ALIASES = {"pre-install": "snapshot_pre_install", "online": "wait_deploy"}


def build_plan() -> list[Step]:
    return [
        *provision.steps(),
        *prepare.steps(),
        *install.steps(),
        *finish.steps(),
    ]


def step_ids() -> list[str]:
    return [step.id for step in build_plan()]


def resolve_until(value: str | None) -> str | None:
    """`--until` takes a step id or an alias (pre-install, online)."""
    if value is None:
        return None
    return UNTIL_ALIASES.get(value, value)
