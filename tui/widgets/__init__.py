"""Widgets, each owning one job. The wizard's: the step bar, the findings list, the host table, the
fingerprint and override dialogs, the answers summary. The dashboard's panes (pane.py and one
module per pane), its text charts (charts.py) and the confirmation dialog."""
