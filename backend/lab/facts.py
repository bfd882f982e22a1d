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

# How vcli takes the VMS password. Known: the field ran `vman.sh <build> <pem> vcli -u admin -p 123456
# -c cluster create ...`, and vman.sh ran vcli in a container with `docker run ... -t <image> .../vman
# 'vcli -u admin -p 123456 ...'` [inst] (vast_install_final.log lines 77, 82): the password was in the
# command line of vman.sh, of the docker client and of vcli (/proc/<pid>/cmdline, readable by every
# user of the guest), and the container's stdin is not attached (-t without -i). vman.sh passes some
# of its environment into the container (`-e DISABLE_IPV6_FOR_LOOPBACK=yes` [inst] §10). Not known:
# any other way vcli takes a password; no public source documents one. VAST's own Python CLI,
# vastpy-cli, reads VMS_USER / VMS_PASSWORD from the environment (research vast.md §1), and a
# process's environment is readable by its owner only. So the lab's vcli takes the password from
# VMS_PASSWORD and refuses `-p` (the one place it must never be); a real vcli that ignores
# VMS_PASSWORD fails the login, which the tool reports with that explanation (backend/install.py).
VCLI_PASSWORD = "env:VMS_PASSWORD"
