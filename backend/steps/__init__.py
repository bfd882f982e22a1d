"""The steps of a run, by group (provision, prepare, install, finish, recovery) and the checks and
fixes they share (preflight, tuning, root growth, the guest's address, VAST's restart)."""
