"""Widgets of the wizard, each owning one job: the step bar, the findings list, the host table, the
fingerprint and override dialogs, the answers summary and the run's step list."""
