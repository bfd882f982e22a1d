"""The 'lab' target provider: starts the lab's world for a run and hands the engine a Target.

The world lives in `options.state_dir` (a run's `lab/` folder; a temporary directory without one),
so a resumed run finds the same VMs. The token is the answers' (`proxmox.token_id` and the
resolved `token_secret` reference) when given, so the same secret flows through real auth;
otherwise the lab's own. Likewise the guest: with `guest.password` in the answers, the lab guest's
`guest.user` logs in with exactly that password (and no longer with the OVA's default), and the
VMS with `vast.admin_password`. The answers' secrets are held in memory only, never written.
A `proxmox.fingerprint` in the answers is pinned against the lab's certificate exactly as against a
real host's (a wrong pin is refused); without one the lab's own certificate is pinned. The state
directory is private (0700): it holds the lab's own secrets.
Guest-related fields (known_hosts, route, guest_password, probe_prefix: where this machine's network
probes run, i.e. the lab's jump host on the guests' LAN) come from the guest side through its
optional `target_fields()` hook. `lab.network` in the answers gives the host its SDN VNet and puts
the jump host on the LAN or elsewhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
from pathlib import Path

from backend.errors import RunFailed
from backend.lab.assembly import vast_guest_factory
from backend.lab.faults import FAULTS_FILE, FaultReports, plan_from_answers
from backend.lab.guest.image import guest_image
from backend.lab.guest.support import GuestUnavailable
from backend.lab.options import LabAnswers
from backend.lab.profiles import PROFILE_DESCRIPTIONS, load_profile
from backend.lab.scenarios import VastBehaviour
from backend.lab.shutdown import end_guests
from backend.lab.world import LabWorld
from backend.model.answers import Answers
from backend.model.answers import register_provider as register_answers
from backend.secrets import Secret
from backend.target import ProviderInfo, Target, TargetOptions, register_provider

DEFAULT_TOKEN_ID = "root@pam!vlb"
NAME = "lab"  # `proxmox.url: lab`, and the answers' `lab:` section


def lab_section(answers: Answers) -> LabAnswers:
    """The answers' `lab:` section (its defaults when they hold none)."""
    return answers.section(NAME)


def lab_label(profile: str, speed: float) -> str:
    return f"lab {profile} x{speed:g}"


async def open_lab(answers: Answers, options: TargetOptions) -> Target:
    # Absolute: the guest's namespace mounts its disk from here, whatever the working directory.
    state_dir = Path(options.state_dir) if options.state_dir else Path(tempfile.mkdtemp(prefix="vlb-lab-"))
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state_dir, 0o700)
    token_id = answers.proxmox.token_id or DEFAULT_TOKEN_ID
    secret = answers.proxmox.token_secret.resolve("proxmox.token_secret") if answers.proxmox.token_secret else None
    lab = lab_section(answers)
    faults_answers = lab.faults
    faults = (plan_from_answers(faults_answers, state_dir / FAULTS_FILE)
              if faults_answers.rate > 0 or faults_answers.schedule else None)
    vast = answers.vast
    vms_password = vast.admin_password.resolve("vast.admin_password").reveal() if vast.admin_password else "123456"
    guest = answers.guest
    passwords = ({guest.user: guest.password.resolve("guest.password").reveal()} if guest.password else None)
    network = lab.network
    profile = load_profile(lab.host_profile)
    if lab.ova.startswith("file:"):  # a guest recording: bad input now, not at the VM's first boot
        guest_image(lab.ova)
    profile = dataclasses.replace(profile, sdn_vnet=profile.sdn_vnet or network.sdn_vnet)
    world = LabWorld(state_dir, profile, options.speed, token_id=token_id,
                     token_secret=secret.reveal() if secret else None, faults=faults,
                     guest_factory=vast_guest_factory(vms_user=vast.admin_user, vms_password=vms_password,
                                                      faults=faults, passwords=passwords,
                                                      ova=lab.ova,
                                                      behaviour=VastBehaviour(
                                                          lab.start_vms_after_reboot,
                                                          lab.vtask_messages,
                                                          lab.overcommit_memory),
                                                      jump_host=network.jump_host,
                                                      vms_cert_path=lab.vms_cert_path))
    try:
        await asyncio.to_thread(world.start)
    except GuestUnavailable as exc:
        await asyncio.to_thread(world.stop)
        raise RunFailed(f"the built-in lab cannot run its guest here: {exc}",
                        hint="the lab guest is a Linux feature (user + mount namespaces); "
                             "use a real Proxmox host instead") from None
    pve = world.pve
    assert pve is not None

    async def closer() -> None:
        # The run is over (done, failed or aborted): the lab stops with it. Its world stays on disk;
        # a later --resume boots its guests afresh, as after a host crash. Only a crash (SIGKILL)
        # leaves the guests running, so that a resume re-attaches to the install still going on.
        await asyncio.to_thread(world.stop)
        await asyncio.to_thread(end_guests, state_dir)

    target = Target(
        label=lab_label(world.profile.name, world.speed),
        description=f"built-in lab ({world.profile.name} host: {world.profile.summary})",
        proxmox_url=pve.url,
        token_id=token_id,
        token_secret=secret or Secret(pve.token_secret),
        clock=world.clock,
        fingerprint=answers.proxmox.fingerprint or pve.fingerprint,
        details={"lab": {"profile": world.profile.name, "speed": world.speed, "state_dir": str(state_dir),
                         "schema": pve.endpoints()["schema"]}},
        closer=closer,
        reported=FaultReports(state_dir / FAULTS_FILE) if faults is not None else None,
    )
    # SEAM (guest side, backend/lab/guest): known_hosts, route, guest_password, probe_prefix for the Target.
    fields = getattr(world.guest, "target_fields", None)
    if callable(fields):
        for key, value in fields().items():
            setattr(target, key, value)
    return target


# A lab run without --speed is compressed 30-fold, as the demo: the field run's 55 minutes in about two.
DEFAULT_SPEED = 30.0

register_provider(NAME, open_lab, default_speed=DEFAULT_SPEED,
                  info=ProviderInfo("built-in lab", "host_profile", PROFILE_DESCRIPTIONS,
                                    file_choice="a real host (vast-loopback probe --record FILE)"))
register_answers(NAME, LabAnswers)
