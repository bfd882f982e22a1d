"""The wizard's widgets: the step bar, the findings list, the host table, the fingerprint and
override dialogs, the answers summary."""
