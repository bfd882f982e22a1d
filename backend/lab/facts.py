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


# --- the OVA: its import metadata and its initramfs ----------------------------------------------


# --- network: how a guest's address can be known ---------------------------------------------------


# --- disk: the field guest's layout ----------------------------------------------------------------


# --- VAST: the install's and the VMS's behaviour ---------------------------------------------------

# After a reboot of the guest. The field's install log ends with "After Reboot: Run: ./start_vms.sh"
# (inst, §10), and jv's start_vms.sh restarts VMS from inside cnode-1: `docker cp /vast/data/vms_image
# vast_platform_11.0.0.1-4100:/vast/data/vms_image`, then `docker exec ... vms-bringup start` in that
# container (jv docs/archive/scripts/start_vms.sh, §10). Whether that works after a reboot was never
# tried (seed checklist unchecked, §10; §16), so the lab models both answers, chosen in the lab's
# answers (`lab.start_vms_after_reboot`):
#   "works": the platform containers come back with Docker (a restart policy), vms-bringup starts VMS
#            and the cluster comes ONLINE again;
#   "fails": they stay stopped, as a container started without a restart policy does after a reboot
#            (vman's COMMON_PARAMS in the field log carry no --restart, inst §10), so `docker exec`
#            answers "container ... is not running" and start_vms.sh fails.
START_VMS_AFTER_REBOOT = ("works", "fails")
START_VMS_AFTER_REBOOT_DEFAULT = "works"
# What comes back with Docker after a reboot in either answer: the registry (started with
# --restart=always by the bootstrap). What never does: vast_vms, run with --rm (vast.md §3
# "Containers": stopping it deletes it), so the VMS API does not answer until VAST is restarted.
# mcvms (no restart policy, started by the bootstrap and by `vman.sh ... start`) stays stopped too.
PLATFORM_RESTART_POLICY = {"works": "unless-stopped", "fails": "no"}
# /vast/data/vms_image, the file start_vms.sh copies into cnode-1: it exists on the guest after the
# install (jv start_vms.sh copies it without creating it). Its content is not known; the lab writes
# the VMS image's name (inferred).
VMS_IMAGE_FILE = "/vast/data/vms_image"
# `vms-bringup start` inside cnode-1, and `vman.sh <build> <pem> start`: modelled (no field log of a
# restart exists). VMS answers after a minute, the cluster reports ACTIVATING from the moment VMS is
# back (never the ONLINE it had before the reboot) and is ONLINE again after about four minutes.
RESTART_VMS_UP_S = 60.0
RESTART_ONLINE_S = 240.0

# A VTask's `messages`: the 5.4 OpenAPI types it as an object (vms54, §11); go-vast-client reads it
# as a list of strings (go-vast-client core/async_result.go, §11). Nobody has a real sample (§16), so
# the lab answers either, chosen in the lab's answers (`lab.vtask_messages`): "list" (a list of
# strings) or "object" (the messages keyed by their numbers, "1", "2"...; the keys are modelled).
VTASK_MESSAGES = ("list", "object")
VTASK_MESSAGES_DEFAULT = "list"

# EXTRA_VOLUME_MOUNTS: the field's script exported `-v /file_server:/file_server`; vman.sh added it to
# its volume mounts and said so: "WARNING! - added extra volume mounts to common params: -v
# /file_server:/file_server" (inst, §10; jv vast_proxmox_install.sh). Without it, vman.sh's
# VOLUME_MOUNTS end at the docker socket and nothing is said (inferred from the warning's wording).
EXTRA_VOLUME_MOUNTS_WARNING = "WARNING! - added extra volume mounts to common params: "
