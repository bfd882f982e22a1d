"""The user interface: the Textual app and widgets, the CLI entry point and the headless printer.

Importing this package does not import Textual; only `tui.app` and the widgets do."""
