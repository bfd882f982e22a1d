"""The lab's world as facts: every number and behaviour the lab's Proxmox host, Rocky 8.10 guest
and VMS follow, each with its source.

The lab stands in for the real world, so it must answer as the real world does, never as our own
rules say it should: nothing here (nor anywhere in `backend/lab/`) imports the product's rules
(sizing, tuning, vmconfig, provision, prepare, install, diagnose, recovery, preflight). Sources are
named by the aliases of `../shared/research/ground-truth.md` §0 (mem, dmesg, inst, seed, jv,
lustre-cfg, dracut8, pve-network, qemu-server, pve-storage, apidata, vms54) with the section (§n)
where the fact is stated, or by the upstream file the behaviour comes from.
"""

from __future__ import annotations

# --- memory: the kernel's overhead and the field run's demand ------------------------------------


# --- kernel: the Rocky 8.10 kernel's storage drivers ---------------------------------------------


# --- kernel and Docker: what the guest keeps of an OOM kill ----------------------------------------

# The kernel's messages live in its ring buffer from boot on (`dmesg`, /dev/kmsg); Rocky 8's journal
# is volatile (no /var/log/journal, Storage=auto), so `journalctl -k` holds this boot only too; both
# are lost at a reboot (the lab rebuilds /dev/kmsg at every boot, runtime.py). /proc/vmstat oom_kill
# counts the OOM killer's kills since boot (mm/oom_kill 8e675f7af507, 4.13; research/monitoring.md).
#
# The VAST containers run without --memory, so the kernel's global OOM killer, not a cgroup limit,
# strikes. The lab lets the victim (`.env`, timeline.oom_messages) be the node container's main
# process (modelled: the field notes of attempt 1 only say the cluster was left in INIT), so Docker
# reports that container exited with 128 + SIGKILL.
OOM_KILLED_EXIT_CODE = 137
# Docker sets State.OOMKilled from containerd's OOM event, which cgroup v1 (Rocky 8) signals on the
# container cgroup's memory.oom_control for an OOM within the cgroup's own limit, not for the global
# OOM killer; users and maintainers report the flag unreliable for a "system OOM" (moby/moby#15621,
# moby/moby#38352, kubernetes/kubernetes#22322). Not verified on a Rocky 8 guest: the product must
# conclude from the kernel's record whichever way this goes.
DOCKER_OOMKILLED_ON_GLOBAL_OOM = False


# --- the OVA: its import metadata and its initramfs ----------------------------------------------


# --- network: how a guest's address can be known ---------------------------------------------------


# --- disk: the field guest's layout ----------------------------------------------------------------


# --- VAST: the install's and the VMS's behaviour ---------------------------------------------------

# The VMS's TLS certificate: self-signed, made by the VMS at its first start (the bootstrap prints
# "please connect at https://<ip>", jv install log, and no CA is involved on a fresh OVA), kept on
# the guest's disk so it survives the container's restarts. Where VAST 5.4 keeps it is not public:
# `vast_vms` runs with `--rm` (anything kept only inside it is gone at each restart) and its only
# persistent mount of its own is /vast/vman (its logs are /vast/vman/vms/log/*, research/vast.md
# §3; `-v /vast/vman:/vast/vman`, jv docker_ps). The file names below are the lab's guess: the
# product's `vast.cert_path` defaults to the same path and is configurable, and the lab can keep it
# elsewhere (`VastGuestLab(vms_cert_path=...)`) to play a guest where the product does not find it.
VMS_CERT_PATH = "/vast/vman/vms/ssl/vms.crt"
VMS_CERT_DAYS = 3650  # modelled: a self-signed appliance certificate made for years
