"""The lab guest: a Rocky Linux 8.10 VM reached over real SSH, whose commands run in real bash
inside unprivileged Linux namespaces, with a faked /proc and /sys and Rocky's tools emulated by
bash stubs, so that nothing of this machine changes.

    lab.py        GuestLab: the world's GuestHooks (power, boot state, agent, snapshots), routes,
                  known_hosts, load/pause/kmsg hooks, the world ticker; `guest_factory()`
    machine.py    one guest: its directory, state (guest.json), boot and SSH endpoint
    namespace.py  the guest's namespaces (user, mount, PID, UTS, IPC, time): start, find, enter, end
    init.py       the guest's PID 1: mounts, pivot_root, boot script, reaping
    rootfs.py     the guest's disk (Rocky /etc, /home/centos, /vast/bundles...) and curated /usr/bin
    runtime.py    a boot's fake /proc, /sys, /dev/kmsg and /run, and the mounts that show them
    load.py       GuestLoad/LoadPoint and the kernel counters rendered from them
    sshd.py       the asyncssh server: password and key auth, exec, shell, sftp, SIGHUP on drop
    rocky.py      Rocky 8.10 facts and runtime defaults (and the choices made about them)
    fsutil.py     touching guest files from the lab without following the guest's symlinks
    support.py    whether this machine can run guests, and as which unprivileged user
    stubs/        the guest's tools (bash, shellcheck-clean) and their data (packages, units,
                  tuned profiles, vendor sysctl files); stubs/vast/ is the place of the VAST tools

Start one in a test: `tests/lab_fixtures.py` (`guest_lab`, `running_guest`, `fresh_guest`,
`connect`). Start one by hand:

    from backend.clock import Clock
    from backend.lab.guest.lab import GuestLab
    lab = GuestLab(state_dir, Clock.scaled(60)).start()
    lab.power_on(hardware)                       # backend.lab.world.GuestHardware
    lab.wait_state(hardware.vmid, "up")
    host, port = lab.route(hardware.ip, 22)      # ssh centos@host -p port, password centos
"""
