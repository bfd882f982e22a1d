"""Widgets, each owning one job, grouped by where they are shown: `wizard/` (the steps before the
run) and `dashboard/` (the run and its result)."""
