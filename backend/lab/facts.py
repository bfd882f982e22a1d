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
