"""The Sizing screen: findings follow every keystroke, ^r applies the recommendation, a blocker
disables Next until it is fixed or overridden on purpose (and the override says why)."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from tests.tui_helpers import SMALL_INVENTORY, Opener, make_app, posted, to_step
from tests.tui_lab_helpers import screen_name
from tui.app import Demo, demo_state
from tui.messages import BlockersOverridden, RecommendationApplied, SizingChanged
from tui.widgets.wizard.findings import FindingsList


def blocker_ids(app) -> list[str]:
    return [f.id for f in app.screen.query_one(FindingsList).findings if f.severity == "blocker"]


async def test_typing_24_vcpus_on_the_seed_host_blocks_and_the_recommendation_fixes_it():
    app = make_app()
    seen = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await to_step(pilot, app, "sizing")
        screen = app.screen
        assert screen.query_one("#vcpus", Input).value == "12"
        assert screen.query_one("#memory", Input).value == "120"
        assert screen.next_enabled and blocker_ids(app) == []
        start = len(posted(seen, SizingChanged))
        await pilot.press("end", "backspace", "backspace", "2")
        assert blocker_ids(app) == [] and screen.next_enabled  # 2 vCPUs: a warning, not a blocker
        await pilot.press("4")
        typed = [m.vcpus for m in posted(seen, SizingChanged)[start:]]
        assert typed == [1, None, 2, 24]  # one evaluation per keystroke
        assert blocker_ids(app) == ["vcpus-over-cores"]
        assert screen.next_enabled is False
        rendered = str(screen.query_one(FindingsList).render())
        assert "24 vCPUs exceed the host's 12 physical cores" in rendered and "P653" in rendered
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert type(app.screen).__name__ == "SizingScreen"  # Next refused
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert (screen.query_one("#vcpus", Input).value, screen.query_one("#memory", Input).value) == ("12", "120")
        applied = posted(seen, RecommendationApplied)
        assert (applied[-1].vcpus, applied[-1].memory_gib, applied[-1].disk_gib) == (12, 120, 1000)
        assert blocker_ids(app) == [] and screen.next_enabled
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert type(app.screen).__name__ == "StorageNetworkScreen"
        vm = app.state.answers.vm
        assert (vm.vcpus, vm.memory_gib, vm.disk_gib) == (12, 120, 1000)


async def test_override_is_a_deliberate_choice_with_the_reason_shown():
    app = make_app()
    seen = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await to_step(pilot, app, "sizing")
        screen = app.screen
        memory = screen.query_one("#memory", Input)
        memory.value = "97"
        await pilot.pause()
        assert blocker_ids(app) == ["memory-below-minimum"] and not screen.next_enabled
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert type(app.screen).__name__ == "OverrideDialog"
        dialog_text = str(app.screen.query_one("#blockers").render())
        assert "VM 97 GiB, the guest sees ≈94.9 GiB: less than the 116.3 GiB" in dialog_text and "OOM" in dialog_text
        await pilot.press("enter")  # Cancel has the focus: Enter does not override
        await pilot.pause()
        assert app.screen is screen and not screen.next_enabled and not posted(seen, BlockersOverridden)
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("o")
        await pilot.pause()
        overridden = posted(seen, BlockersOverridden)
        assert overridden and overridden[0].ids == ("memory-below-minimum",)
        assert screen.next_enabled
        assert "Overridden on purpose" in str(screen.query_one("#override-banner").render())
        assert "OVERRIDDEN" in str(screen.query_one(FindingsList).render())
        memory.value = "96"  # the same blocker stays overridden
        await pilot.pause()
        assert screen.next_enabled
        screen.query_one("#vcpus", Input).value = "24"  # a new blocker is not
        await pilot.pause()
        assert not screen.next_enabled
        screen.query_one("#vcpus", Input).value = "12"
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.state.forced and app.state.answers.vm.memory_gib == 96


@pytest.mark.parametrize("field, typed, said", [
    ("disk", "", "Disk GiB is empty."),
    ("memory", "12O", "VM RAM GiB '12O' is not a whole number."),
    ("vcpus", "0", "vCPUs 0 must be between 1 and 512."),
])
async def test_an_invalid_field_is_the_finding_and_next_stays_off_until_fixed(field, typed, said):
    """Never "no blockers" next to an invalid value: the field is the finding, Next and ^n refuse
    until it is fixed, and fixing it brings back the sizing's own findings."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await to_step(pilot, app, "sizing")
        screen = app.screen
        box = screen.query_one(f"#{field}", Input)
        good = box.value
        box.value = typed
        await pilot.pause()
        shown = screen.query_one(FindingsList).render().plain
        assert said in shown and "no blockers" not in shown
        assert "BLOCKER" in shown and box.has_class("-invalid")
        assert not screen.next_enabled and said.rstrip(".") in screen.status
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert screen_name(app) == "SizingScreen"
        box.value = good
        await pilot.pause()
        assert screen.next_enabled and said not in screen.query_one(FindingsList).render().plain
        assert not box.has_class("-invalid")


async def test_a_host_too_small_says_it_cannot_host_it():
    app = make_app(opener=Opener(facts=SMALL_INVENTORY))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_step(pilot, app, "sizing")
        assert "host-memory-too-small" in blocker_ids(app)
        assert "cannot host the cluster" in str(app.screen.query_one("#recommendation").render())
        assert not app.screen.next_enabled


async def test_demo_overcommit_preset_shows_the_blocker_first():
    app = make_app(demo_state("overcommit", 30), demo=Demo("overcommit"))
    async with app.run_test(size=(80, 24)) as pilot:
        assert "^t connects" in str(app.screen.query_one(".demo-hint").render())
        await to_step(pilot, app, "sizing")
        assert "^o overrides it on purpose" in str(app.screen.query_one(".demo-hint").render())
        assert app.screen.query_one("#vcpus", Input).value == "24"
        assert app.screen.query_one("#memory", Input).value == "112"  # attempt 2's VM: its guest saw 109Gi
        assert blocker_ids(app) == ["vcpus-over-cores", "memory-below-minimum"] and not app.screen.next_enabled


async def test_demo_oom_preset_is_attempt_1_in_vm_units():
    app = make_app(demo_state("oom", 30), demo=Demo("oom"))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_step(pilot, app, "sizing")
        assert app.screen.query_one("#memory", Input).value == "100"  # its guest sees 97.8 GiB: the report's 97 GB
        assert blocker_ids(app) == ["memory-below-minimum"]
        assert "the guest sees ≈97.8 GiB" in str(app.screen.query_one("#guest-memory").render())


async def test_the_reports_figures_typed_as_the_vms_get_the_vm_size_that_gives_them():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await to_step(pilot, app, "sizing")
        app.screen.query_one("#memory", Input).value = "117"
        await pilot.pause()
        shown = str(app.screen.query_one(FindingsList).render())
        assert "'117GB' is what its guest saw" in shown and "120 GiB" in shown


async def test_force_from_the_command_line_lets_blockers_pass():
    from tui.wizardstate import WizardState

    state = WizardState(force=True)
    state.answers.vm.vcpus = 24
    app = make_app(state)
    async with app.run_test(size=(80, 24)) as pilot:
        await to_step(pilot, app, "sizing")
        assert blocker_ids(app) == ["vcpus-over-cores"] and app.screen.next_enabled
        assert "Overridden" in str(app.screen.query_one("#override-banner").render())
