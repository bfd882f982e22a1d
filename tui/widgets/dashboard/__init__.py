"""The dashboard's widgets: panes (pane.py and one module per pane), their text charts, and the
run's confirmation dialogs."""
