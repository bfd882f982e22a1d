"""The guest half of the preflight checklist on the lab guest over real SSH: KVM, memory and disk as
the guest sees them, the VAST bundle, and the tunings read back (warnings until applied)."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

from backend.clients.commands import sh
from backend.steps import tuning
from backend.steps.preflight import guest_items, judge
from tests.guest_lab_support import client
from tests.lab_fixtures import fresh_guest  # noqa: F401

BUILD = "release-5-4-0-2043819"


async def test_the_untuned_ova_passes_the_blockers_and_warns_about_tuning(fresh_guest):
    guest = await client(fresh_guest)
    try:
        env = tuning.TuningEnv(guest=guest, user="centos")
        items = {i.id: i for i in await guest_items(guest, env, BUILD, fresh_guest.hw.memory_mib, 12)}
        assert items["kvm"].ok and items["kvm"].observed == "kvm"
        assert items["memory_guest"].ok and items["memory_guest"].observed.startswith("117.")
        assert items["cpus_guest"].ok
        assert items["disk"].ok and items["disk"].observed.startswith("sda 600 GiB")
        assert items["bundle_bootstrap"].ok and items["bundle_tarball"].ok
        assert not items["thp-enabled"].ok and items["thp-enabled"].severity == "warning"
        assert items["thp-enabled"].observed == "always"
        assert judge(list(items.values()), force=False) == []
    finally:
        await guest.close()


async def test_a_missing_bundle_is_a_blocker(fresh_guest):
    fresh_guest.run("rm -f /vast/bundles/vast_bootstrap.sh")
    guest = await client(fresh_guest)
    try:
        env = tuning.TuningEnv(guest=guest, user="centos")
        items = await guest_items(guest, env, BUILD, fresh_guest.hw.memory_mib, 12)
        blockers = judge(items, force=True)  # --force overrides sizing, never a missing bundle
        assert [i.id for i in blockers] == ["bundle_bootstrap"]
        assert blockers[0].observed == "missing"
        assert (await guest.run(sh("test", "-e", "/vast/bundles/vast_bootstrap.sh"))).exit_status == 1
    finally:
        await guest.close()
