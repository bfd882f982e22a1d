"""QEMU VMs on the lab host: create (with OVA import), power, config, snapshots, destroy.

Each operation checks what Proxmox checks before it forks its worker (those errors are the HTTP
answer) and plans a task for the rest (those errors end the task: `exitstatus` is the message).
The task's effect is applied when the lab clock reaches its end. Messages are qemu-server's.

Durations are lab seconds, compressed by the lab's speed: create + import of the 600 GiB OVA disk
about 6 minutes, start 5 s, shutdown 20 s, snapshot 5 s, rollback 15 s.

The guest inside a VM is someone else's: this module only calls the `GuestHooks` it was given
(power_on with the VM's hardware, power_off, snapshot, rollback, destroy) and asks it whether it
is up and whether its agent runs. Pending changes (non-hotpluggable options changed while the VM
runs) apply at the next cold start, as on a real host; a reboot from inside the guest keeps them
pending.
"""

from __future__ import annotations

import copy
import re
import uuid

from backend.lab import facts
from backend.lab.profiles import GIB, OVA_DISK_SIZE, OVA_NAME, OVA_SIZE, NodeProfile
from backend.lab.pve import vmconf
from backend.lab.pve.errors import failed, param_error
from backend.lab.pve.host import bridge_names
from backend.lab.pve.pvestate import PveState
from backend.lab.pve.tasks import transfer_lines
from backend.lab.world import GuestHardware

START_S = 5.0
SHUTDOWN_S = 20.0
STOP_S = 2.0
REBOOT_S = 25.0
SNAPSHOT_S = 5.0
ROLLBACK_S = 15.0
DELSNAP_S = 3.0
DESTROY_S = 4.0
CONFIG_S = 0.5
RESIZE_S = 2.0
CREATE_S = 3.0
FAIL_S = 0.5
SHUTDOWN_TIMEOUT_S = 60  # vm_shutdown's default when the guest ignores ACPI
EXTRACT_RATE = 400 * 1000**2  # bytes/s: tar -x of the OVA onto the working storage
CONVERT_RATE = 2.0 * GIB  # bytes/s: qemu-img convert onto the thin pool (600 GiB in 5 min)
QEMU_VERSION = {8: "9.2.0", 9: "10.1.2"}

NEW_DISK = re.compile(r"^(([^/:\s]+):)?(\d+(\.\d+)?)$")
OVA_DISK = re.compile(r"^(?P<storage>[^:]+):import/(?P<ova>[^/]+\.ova)/(?P<inner>[^/]+)$")
NOT_CONFIG = {"node", "vmid", "start", "import-working-storage", "live-restore", "archive", "storage", "force",
              "unique", "pool", "bwlimit", "digest", "delete", "revert", "skiplock", "background_delay"}


def ova_disk_name() -> str:
    return OVA_NAME.removesuffix(".ova") + "-disk1.vmdk"


class Qemu:
    """The VM operations of one lab host; every method runs inside a state transaction."""

    def __init__(self, state: PveState) -> None:
        self.state = state
        state.effects.update({
            "create": self._created, "create_failed": self._create_failed, "start": self._started, "shutdown": self._shut_down, "stop": self._shut_down,
            "reboot": self._rebooted, "snapshot": self._snapshotted, "rollback": self._rolled_back,
            "delsnapshot": self._snapshot_deleted, "destroy": self._destroyed, "unlock": self._unlock,
        })

    @property
    def major(self) -> int:
        return int(self.state.profile.pve_version.split(".")[0])

    # --- lookups -------------------------------------------------------------------------------

    def vm(self, node: str, vmid: int | str) -> dict:
        self.state.node(node)
        vm = self.state.data["vms"].get(str(vmid))
        if vm is None or vm["node"] != node:
            raise failed(f"Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist")
        return vm

    def vms(self, node: str | None = None) -> list[dict]:
        return [vm for vm in self.state.data["vms"].values() if node is None or vm["node"] == node]

    @staticmethod
    def lock_error(vm: dict) -> str | None:
        lock = vm["config"].get("lock")
        return f"VM is locked ({lock})" if lock else None

    def _check_lock(self, vm: dict, skiplock: bool = False) -> None:
        message = self.lock_error(vm)
        if message and not skiplock:
            raise failed(message)

    def _task(self, vm: dict, kind: str, user: str, duration: float, *, op: str = "", args: dict | None = None,
              lines: list[tuple[float, str]] | None = None, error: str | None = None) -> str:
        return self.state.start_task(node=vm["node"], kind=kind, ident=str(vm["vmid"]), user=user,
                                     duration=FAIL_S if error else duration, lines=lines, error=error,
                                     op="" if error else op, args=args)

    # --- create --------------------------------------------------------------------------------

    def create(self, node_name: str, params: dict[str, str], user: str) -> str:
        state = self.state
        node = state.node(node_name)
        vmid = int(params["vmid"])
        existing = state.data["vms"].get(str(vmid))
        if existing is not None:
            raise failed(f"unable to create VM {vmid} - VM {vmid} already exists on node '{existing['node']}'")
        config = {k: v for k, v in params.items() if k not in NOT_CONFIG}
        drives = {k: vmconf.parse_drive(v) for k, v in config.items() if vmconf.is_drive(k)}
        imports: dict[str, dict] = {}
        for key, drive in drives.items():
            self._check_new_drive(node, key, drive, params, imports)
        for key in [k for k in config if vmconf.NET_KEY.match(k)]:
            net = vmconf.parse_net(config[key])
            net.setdefault("macaddr", vmconf.new_mac())
            config[key] = vmconf.print_net(net)
        now = state.now()
        config.setdefault("smbios1", f"uuid={uuid.uuid4()}")
        config.setdefault("vmgenid", str(uuid.uuid4()))
        config["meta"] = f"creation-qemu={QEMU_VERSION.get(self.major, '10.1.2')},ctime={int(now)}"
        if "boot" not in config:
            boot = vmconf.default_boot_order(config)
            if boot:
                config["boot"] = boot
        # Like create_and_lock_config: until the worker writes the whole config at its end, the VM's
        # config holds nothing but the lock (no name, no tags).
        state.data["vms"][str(vmid)] = {
            "vmid": vmid, "node": node.node, "config": {"lock": "create"}, "pending": {}, "pending_delete": [],
            "snapshots": {}, "status": "stopped", "started": None, "qemu_pid": None,
        }
        state.changed()
        lines, duration, final, error = self._plan_disks(vmid, node, drives, imports)
        if error:
            return state.start_task(node=node.node, kind="qmcreate", ident=str(vmid), user=user, duration=duration,
                                    lines=lines, op="create_failed", error=f"unable to create VM {vmid} - {error}")
        final_config = {**{k: v for k, v in config.items() if not vmconf.is_drive(k)}, **final}
        return state.start_task(node=node.node, kind="qmcreate", ident=str(vmid), user=user, duration=duration,
                                lines=lines, op="create",
                                args={"config": final_config, "start": params.get("start") == "1"})

    def _check_new_drive(self, node: NodeProfile, key: str, drive: dict, params: dict, imports: dict) -> None:
        volid = drive.get("file", "")
        if volid in ("none", "cdrom") or drive.get("media") == "cdrom":
            return
        match = NEW_DISK.match(volid)
        if drive.get("import-from") and (not match or float(match.group(3)) != 0):
            raise param_error({key: "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>"})
        if not match:
            return  # an existing volume: attached as it is
        store = self.state.storage(node, match.group(2) or "")
        if "images" not in self.state.storage_content(store):
            raise param_error({"storage": f"storage '{store.storage}' does not support vm images"})
        source = drive.get("import-from")
        if source:
            inner = OVA_DISK.match(source)
            if inner:
                working = params.get("import-working-storage") or inner.group("storage")
                work_store = self.state.storage(node, working)
                if work_store.type != "dir" or "images" not in self.state.storage_content(work_store):
                    raise param_error({"import-working-storage": (
                        f"storage '{working}' does not support 'images' content type or is not file based")})
            source_volume = re.match(r"^([^:/]+):", source)
            if source_volume:
                self.state.storage(node, source_volume.group(1))
            imports[key] = {"source": source, "inner": inner.groupdict() if inner else None}

    def _plan_disks(self, vmid: int, node: NodeProfile, drives: dict[str, dict],
                    imports: dict[str, dict]) -> tuple[list[tuple[float, str]], float, dict[str, str], str | None]:
        """The create task's log, its duration, the drives as they end up in the config, or an error."""
        lines: list[tuple[float, str]] = []
        t = 0.5
        final: dict[str, str] = {}
        disk_no = 0
        for key in sorted(drives):
            drive = dict(drives[key])
            match = NEW_DISK.match(drive.get("file", ""))
            if not match:
                final[key] = vmconf.print_drive(drive)
                continue
            storage = match.group(2)
            volname = f"vm-{vmid}-disk-{disk_no}"
            disk_no += 1
            source = drive.pop("import-from", None)
            if source:
                size, t, more, error = self._plan_import(vmid, node, storage, volname, imports[key], t)
                lines += more
                if error:
                    return lines, t + FAIL_S, final, error
            else:
                size = int(float(match.group(3)) * GIB)
                lines.append((t, f'  Logical volume "{volname}" created.'))
                t += 0.5
            drive["file"] = f"{storage}:{volname}"
            drive["size"] = str(size)
            drive.pop("format", None)
            final[key] = vmconf.print_drive(drive)
            lines.append((t, f"{key}: successfully created disk '{final[key]}'"))
        return lines, max(t, CREATE_S), final, None

    def _plan_import(self, vmid: int, node: NodeProfile, storage: str, volname: str, info: dict,
                     t: float) -> tuple[int, float, list[tuple[float, str]], str | None]:
        """Extraction (OVA) and conversion of one imported disk; the lab has only the VAST OVA's disk."""
        source, inner = info["source"], info["inner"]
        lines: list[tuple[float, str]] = []
        missing = f"cannot import from '{source}' - could not get size of {source}"
        if inner is None or not (inner["storage"] == node.ova_storage and inner["ova"] == OVA_NAME
                                 and inner["inner"] == ova_disk_name()):
            return 0, t, lines, missing
        workdir = f"/var/lib/vz/images/{vmid}/tmp_{self.state.data['next_pid']}_{vmid}"
        extract_s = OVA_SIZE / EXTRACT_RATE
        lines.append((t, f"extracting {inner['inner']} from {inner['storage']}:import/{inner['ova']}"))
        t += extract_s
        lines.append((t, f"renaming {workdir}/{inner['inner']} to /var/lib/vz/images/{vmid}/"
                         f"vm-{vmid}-disk-0.vmdk"))
        size = OVA_DISK_SIZE
        lines.append((t, f"importing disk '{source}' to VM {vmid} ..."))
        lines.append((t + 0.2, f'  Logical volume "{volname}" created.'))
        convert_s = size / CONVERT_RATE
        lines += transfer_lines(t + 0.5, convert_s, size)
        t += 0.5 + convert_s + 0.5
        lines.append((t, f"Successfully imported disk as 'unused0:{storage}:{volname}'"))
        return size, t, lines, None

    def _create_failed(self, task: dict) -> None:
        """A failed create leaves nothing behind (create_vm destroys the config)."""
        self.state.data["vms"].pop(task["id"], None)
        self.state.changed()

    def _created(self, task: dict) -> None:
        vm = self.state.data["vms"].get(task["id"])
        if vm is None:
            return
        vm["config"] = dict(task["args"]["config"])
        if task["args"].get("start"):
            self._begin_start(vm, task["user"])
        self.state.changed()

    # --- power ---------------------------------------------------------------------------------

    def start(self, node: str, vmid: int, user: str, skiplock: bool = False) -> str:
        vm = self.vm(node, vmid)
        return self._begin_start(vm, user, skiplock)

    def _begin_start(self, vm: dict, user: str, skiplock: bool = False) -> str:
        error = None if skiplock else self.lock_error(vm)
        if not error and vm["status"] == "running":
            error = f"VM {vm['vmid']} already running"
        if not error:
            error = self._missing_bridge(vm)
        return self._task(vm, "qmstart", user, START_S, op="start", error=error)

    def _missing_bridge(self, vm: dict) -> str | None:
        node = self.state.node(vm["node"])
        config = {**vm["config"], **vm["pending"]}
        for key, value in config.items():
            if vmconf.NET_KEY.match(key):
                bridge = vmconf.parse_net(value).get("bridge")
                if bridge and bridge not in bridge_names(self.state.profile, node):
                    return f"bridge '{bridge}' does not exist"
        return None

    def _apply_pending(self, vm: dict) -> None:
        if not vm["pending"] and not vm["pending_delete"]:
            return
        vm["config"].update(vm["pending"])
        for key in vm["pending_delete"]:
            vm["config"].pop(key, None)
        vm["pending"], vm["pending_delete"] = {}, []

    def _started(self, task: dict) -> None:
        vm = self.state.data["vms"].get(task["id"])
        if vm is None:
            return
        self._apply_pending(vm)
        vm["status"] = "running"
        vm["started"] = task["end"]
        vm["qemu_pid"] = task["pid"] + 3
        hardware = self.hardware(vm)
        guest = self.state.guest
        self.state.defer(lambda: guest.power_on(hardware))
        self.state.changed()

    def hardware(self, vm: dict) -> GuestHardware:
        config = vm["config"]
        node = self.state.node(vm["node"])
        disks = [k for k in sorted(config) if vmconf.is_drive(k) and not k.startswith(("efidisk", "tpmstate"))
                 and "media=cdrom" not in config[k]]
        ordered = [k for k in vmconf.boot_order(config) if k in disks]
        boot_key = (ordered or disks or [""])[0]
        drive = vmconf.parse_drive(config[boot_key]) if boot_key else {}
        net = vmconf.parse_net(config.get("net0", "virtio,bridge=vmbr0"))
        mac = net.get("macaddr", "")
        bridge = net.get("bridge", "")
        ip, prefix = self._address(vm, mac, bridge)
        return GuestHardware(
            vmid=vm["vmid"], name=config.get("name", f"VM{vm['vmid']}"), vcpus=vmconf.vcpus(config),
            sockets=int(config.get("sockets", 1)), cores=int(config.get("cores", 1)),
            memory_mib=vmconf.memory_mib(config), balloon_mib=vmconf.balloon_mib(config),
            cpu_type=vmconf.cpu_type(config), scsihw=config.get("scsihw", "lsi"),
            disk_iothread=drive.get("iothread") in ("1", "on", "yes", "true"),
            disk_gib=vmconf.drive_size(drive) // GIB, host_cores=node.cores, host_threads=node.threads,
            host_cpu_model=node.cpu_model, mac=mac, ip=ip, prefix=prefix, bridge=bridge,
            disk_bus=re.sub(r"\d+$", "", boot_key) or "scsi", machine=vmconf.machine_type(config),
        )

    def _address(self, vm: dict, mac: str, bridge: str) -> tuple[str, int]:
        """(address, prefix length) the guest's NIC gets by DHCP at this start: from Proxmox's IPAM
        on the SDN VNet (facts.IPAM_LEASE_AT_NIC_START), from the LAN's own DHCP server on vmbr0
        (Proxmox records nothing: facts.IPAM_ONLY_ON_DHCP_VNETS), none on a bridge without uplink."""
        if not mac:
            return "", 0
        if bridge == facts.SDN_VNET and self.state.profile.sdn_vnet:
            name = vm["config"].get("name", f"VM{vm['vmid']}")
            return self.state.ipam_lease(mac, vm["vmid"], name), int(facts.SDN_SUBNET.split("/")[1])
        if bridge == facts.LAN_BRIDGE:
            return self.state.lan_lease(mac), facts.LAN_PREFIXLEN
        return "", 0

    def shutdown(self, node: str, vmid: int, user: str, *, timeout: int | None, force_stop: bool,
                 skiplock: bool = False) -> str:
        vm = self.vm(node, vmid)
        error = None if skiplock else self.lock_error(vm)
        if error or vm["status"] != "running":
            return self._task(vm, "qmshutdown", user, STOP_S, error=error)
        duration = SHUTDOWN_S
        graceful = True
        if self.state.guest.boot_state(vm["vmid"]) != "up":  # nothing in the guest answers ACPI
            duration = float(timeout if timeout is not None else SHUTDOWN_TIMEOUT_S)
            if not force_stop:
                return self._task(vm, "qmshutdown", user, duration, error="VM quit/powerdown failed - got timeout")
            graceful = False
        return self._task(vm, "qmshutdown", user, duration, op="shutdown", args={"graceful": graceful})

    def stop(self, node: str, vmid: int, user: str, skiplock: bool = False) -> str:
        vm = self.vm(node, vmid)
        error = None if skiplock else self.lock_error(vm)
        if error or vm["status"] != "running":
            return self._task(vm, "qmstop", user, STOP_S, error=error)
        return self._task(vm, "qmstop", user, STOP_S, op="stop", args={"graceful": False})

    def _shut_down(self, task: dict) -> None:
        vm = self.state.data["vms"].get(task["id"])
        if vm is None or vm["status"] != "running":
            return
        self._power_off(vm, bool(task["args"].get("graceful")))

    def _power_off(self, vm: dict, graceful: bool) -> None:
        vm["status"] = "stopped"
        vm["started"] = None
        vm["qemu_pid"] = None
        guest, vmid = self.state.guest, vm["vmid"]
        self.state.defer(lambda: guest.power_off(vmid, graceful))
        self.state.changed()

    def reboot(self, node: str, vmid: int, user: str) -> str:
        vm = self.vm(node, vmid)
        if vm["status"] != "running":
            raise failed(f"VM {vmid} not running")
        self._check_lock(vm)
        return self._task(vm, "qmreboot", user, REBOOT_S, op="reboot")

    def _rebooted(self, task: dict) -> None:
        vm = self.state.data["vms"].get(task["id"])
        if vm is None or vm["status"] != "running":
            return
        self._power_off(vm, True)
        self._started(task)

    def guest_initiated(self, vmid: int, action: str) -> None:
        """The guest powered itself off (the VM stops) or rebooted (QEMU keeps running)."""
        vm = self.state.data["vms"].get(str(vmid))
        if vm is None or vm["status"] != "running":
            return
        if action == "poweroff":
            vm["status"] = "stopped"
            vm["started"] = None
            vm["qemu_pid"] = None
            self.state.changed()

    def reattach_guests(self) -> None:
        """After a restart of the lab: tell the guest side which VMs Proxmox says are running.

        A guest side with a `resume(hardware_list)` hook gets the list; otherwise a guest that is
        "off" although its VM runs is powered on again (it boots afresh, as after a host crash). A
        guest still up although its VM was stopped (the lab died before telling it) is powered off.
        """
        ours = [vm for vm in self.vms() if not vm.get("foreign")]  # no lab guest runs in another's VM
        running = [self.hardware(vm) for vm in ours if vm["status"] == "running"]
        guest = self.state.guest
        for vm in ours:  # stopped while the lab died before the guest side was told
            if vm["status"] != "running" and guest.boot_state(vm["vmid"]) in ("booting", "up"):
                self.state.defer(lambda vmid=vm["vmid"]: guest.power_off(vmid, False))
        resume = getattr(guest, "resume", None)
        if callable(resume):
            self.state.defer(lambda: resume(running))
            return
        def power_on_if_off(hw: GuestHardware) -> None:
            if guest.boot_state(hw.vmid) == "off":
                guest.power_on(hw)

        for hw in running:
            self.state.defer(lambda hw=hw: power_on_if_off(hw))

    # --- config --------------------------------------------------------------------------------

    def config_view(self, vm: dict, current: bool, snapshot: str | None) -> dict:
        if snapshot:
            snap = vm["snapshots"].get(snapshot)
            if snap is None:
                raise failed(f"snapshot '{snapshot}' does not exist")
            config = dict(snap["config"])
            config["digest"] = vmconf.digest(vm["config"], vm["snapshots"])
            return vmconf.as_json(config)
        config = dict(vm["config"])
        if not current:
            config.update(vm["pending"])
            for key in vm["pending_delete"]:
                config.pop(key, None)
        config["digest"] = vmconf.digest(vm["config"], vm["snapshots"])
        return vmconf.as_json(config)

    def pending_view(self, vm: dict) -> list[dict]:
        rows = []
        keys = set(vm["config"]) | set(vm["pending"]) | set(vm["pending_delete"])
        for key in sorted(keys):
            row: dict = {"key": key}
            if key in vm["config"]:
                row["value"] = vm["config"][key]
            if key in vm["pending"]:
                row["pending"] = vm["pending"][key]
            if key in vm["pending_delete"]:
                row["delete"] = 1
            rows.append(row)
        return rows

    def update_config(self, node: str, vmid: int, params: dict[str, str]) -> None:
        vm = self.vm(node, vmid)
        if params.get("digest") and params["digest"] != vmconf.digest(vm["config"], vm["snapshots"]):
            raise failed("detected modified configuration - file changed by other user? Try again.")
        self._check_lock(vm, params.get("skiplock") == "1")
        changes = {k: v for k, v in params.items() if k not in NOT_CONFIG}
        deletes = [k for k in re.split(r"[,;\s\0]+", params.get("delete", "")) if k]
        reverts = [k for k in re.split(r"[,;\s\0]+", params.get("revert", "")) if k]
        both = set(changes) & set(deletes)
        if both:
            raise failed(f"you can't change and delete the same option ('{sorted(both)[0]}')")
        node_profile = self.state.node(node)
        for key, value in list(changes.items()):
            if vmconf.is_drive(key):
                changes[key] = self._updated_drive(vm, node_profile, key, value)
            elif vmconf.NET_KEY.match(key):
                net = vmconf.parse_net(value)
                old = vmconf.parse_net(vm["config"].get(key, ""))
                net.setdefault("macaddr", old.get("macaddr") or vmconf.new_mac())
                changes[key] = vmconf.print_net(net)
        for key in reverts:
            vm["pending"].pop(key, None)
            if key in vm["pending_delete"]:
                vm["pending_delete"].remove(key)
        running = vm["status"] == "running"
        for key, value in changes.items():
            if running and not self._hotpluggable(key):
                vm["pending"][key] = value
            else:
                vm["config"][key] = value
                vm["pending"].pop(key, None)
        for key in deletes:
            if running and not self._hotpluggable(key):
                if key not in vm["pending_delete"]:
                    vm["pending_delete"].append(key)
            elif vmconf.is_drive(key) and key in vm["config"]:
                self._detach(vm, key)
            else:
                vm["config"].pop(key, None)
                vm["pending"].pop(key, None)
        vmconf.drop_reattached_unused(vm["config"])
        self.state.changed()

    @staticmethod
    def _hotpluggable(key: str) -> bool:
        return key in vmconf.FAST_PLUG or bool(vmconf.NET_KEY.match(key)) or (
            vmconf.is_drive(key) and not key.startswith(("efidisk", "tpmstate")))

    def _updated_drive(self, vm: dict, node: NodeProfile, key: str, value: str) -> str:
        drive = vmconf.parse_drive(value)
        match = NEW_DISK.match(drive.get("file", ""))
        if drive.get("import-from"):
            raise param_error({key: "'import-from' is only supported when creating a VM in the lab"})
        if not match:
            old = vmconf.parse_drive(vm["config"].get(key, ""))
            if old.get("file") == drive.get("file") and "size" not in drive and "size" in old:
                drive["size"] = old["size"]
            return vmconf.print_drive(drive)
        store = self.state.storage(node, match.group(2) or "")
        if "images" not in self.state.storage_content(store):
            raise param_error({"storage": f"storage '{store.storage}' does not support vm images"})
        used = {vmconf.parse_drive(v).get("file") for k, v in vm["config"].items() if vmconf.is_drive(k)
                or k.startswith("unused")}
        number = next(n for n in range(1000) if f"{store.storage}:vm-{vm['vmid']}-disk-{n}" not in used)
        drive["file"] = f"{store.storage}:vm-{vm['vmid']}-disk-{number}"
        drive["size"] = str(int(float(match.group(3)) * GIB))
        return vmconf.print_drive(drive)

    def _detach(self, vm: dict, key: str) -> None:
        volid = vmconf.parse_drive(vm["config"].pop(key)).get("file", "")
        index = next(n for n in range(256) if f"unused{n}" not in vm["config"])
        if volid and volid not in ("none", "cdrom"):
            vm["config"][f"unused{index}"] = volid

    def update_config_task(self, node: str, vmid: int, params: dict[str, str], user: str) -> str:
        self.update_config(node, vmid, params)
        vm = self.vm(node, vmid)
        return self._task(vm, "qmconfig", user, CONFIG_S)

    def resize(self, node: str, vmid: int, disk: str, size: str, user: str, skiplock: bool = False) -> str:
        vm = self.vm(node, vmid)
        error = None if skiplock else self.lock_error(vm)
        match = re.match(r"^(\+)?(\d+(\.\d+)?)([KMGT])?$", size)
        if not error and not match:
            error = "invalid size string"
        if not error and disk not in vm["config"]:
            error = f"disk '{disk}' does not exist"
        if error:
            return self._task(vm, "resize", user, FAIL_S, error=error)
        drive = vmconf.parse_drive(vm["config"][disk])
        current = vmconf.drive_size(drive)
        amount = float(match.group(2)) * {"K": 1024, "M": 1024**2, "G": GIB, "T": 1024**4}.get(match.group(4) or "", 1)
        new = int(current + amount) if match.group(1) else int(amount)
        if new < current:
            return self._task(vm, "resize", user, FAIL_S, error="shrinking disks is not supported")
        drive["size"] = str(new)
        vm["config"][disk] = vmconf.print_drive(drive)
        self.state.changed()
        return self._task(vm, "resize", user, RESIZE_S)

    # --- snapshots -----------------------------------------------------------------------------

    def snapshots_view(self, vm: dict) -> list[dict]:
        rows = []
        for name, snap in vm["snapshots"].items():
            row = {"name": name, "description": snap.get("description", ""), "snaptime": snap["snaptime"]}
            if snap.get("parent"):
                row["parent"] = snap["parent"]
            row["vmstate"] = 0
            rows.append(row)
        current = {"name": "current", "digest": vmconf.digest(vm["config"], vm["snapshots"]),
                   "running": 1 if vm["status"] == "running" else 0, "description": "You are here!"}
        if vm["config"].get("parent"):
            current["parent"] = vm["config"]["parent"]
        rows.append(current)
        return rows

    def snapshot(self, node: str, vmid: int, name: str, description: str, user: str) -> str:
        vm = self.vm(node, vmid)
        if name == "current":
            raise failed("unable to use snapshot name 'current' (reserved name)")
        if name.lower() == "pending":
            raise failed("unable to use snapshot name 'pending' (reserved name)")
        error = self.lock_error(vm)
        if not error and name in vm["snapshots"]:
            error = f"snapshot name '{name}' already used"
        if error:
            return self._task(vm, "qmsnapshot", user, FAIL_S, error=error)
        # The guest's disk first, then the record: a lab killed in between never keeps a snapshot
        # whose disk state was not taken (a retried request takes it again).
        try:
            self.state.guest.snapshot(int(vmid), name)
        except Exception as exc:  # the guest side's trouble is the request's error, never the API's
            raise failed(f"snapshot of VM {vmid}'s disk failed: {exc}") from None
        vm["config"]["lock"] = "snapshot"
        config = {k: v for k, v in vm["config"].items() if k not in ("lock", "parent")}
        snap = {"config": config, "snaptime": int(self.state.now()), "description": description,
                "parent": vm["config"].get("parent")}
        self.state.changed()
        lines = []
        for key, value in sorted(vm["config"].items()):
            if vmconf.is_drive(key) and "media=cdrom" not in value:
                volid = vmconf.parse_drive(value).get("file", "")
                lines.append((0.5, f"snapshotting 'drive-{key}' ({volid})"))
                lines.append((1.0, f'  Logical volume "snap_{volid.split(":", 1)[-1]}_{name}" created.'))
        return self._task(vm, "qmsnapshot", user, SNAPSHOT_S, op="snapshot", args={"name": name, "snap": snap},
                          lines=lines)

    def _snapshotted(self, task: dict) -> None:
        vm = self.state.data["vms"].get(task["id"])
        if vm is None:
            return
        name, snap = task["args"]["name"], task["args"]["snap"]
        if not snap.get("parent"):
            snap.pop("parent", None)
        vm["snapshots"][name] = snap
        vm["config"]["parent"] = name
        vm["config"].pop("lock", None)
        self.state.changed()

    def rollback(self, node: str, vmid: int, name: str, start: bool, user: str) -> str:
        vm = self.vm(node, vmid)
        error = self.lock_error(vm)
        if not error and name not in vm["snapshots"]:
            error = f"snapshot '{name}' does not exist"
        if error:
            return self._task(vm, "qmrollback", user, FAIL_S, error=error)
        vm["config"]["lock"] = "rollback"
        if vm["status"] == "running":
            self._power_off(vm, False)
        self.state.changed()
        return self._task(vm, "qmrollback", user, ROLLBACK_S, op="rollback", args={"name": name, "start": start})

    def _rolled_back(self, task: dict) -> None:
        vm = self.state.data["vms"].get(task["id"])
        if vm is None:
            return
        name = task["args"]["name"]
        snap = vm["snapshots"].get(name)
        if snap is None:
            raise failed(f"snapshot '{name}' does not exist")
        # The guest's disk first, then the record (as for a snapshot); the guest is off by now unless
        # the lab was killed before it could power it off.
        guest, vmid = self.state.guest, vm["vmid"]
        try:
            if guest.boot_state(vmid) != "off":
                guest.power_off(vmid, False)
            guest.rollback(vmid, name)
        except Exception as exc:  # the task fails with it; the record stays as it was
            raise failed(f"rollback of VM {vmid}'s disk failed: {exc}") from None
        vm["config"] = {**copy.deepcopy(snap["config"]), "parent": name}
        vm["pending"], vm["pending_delete"] = {}, []
        if task["args"].get("start"):
            self._started(task)
        self.state.changed()

    def delete_snapshot(self, node: str, vmid: int, name: str, user: str, force: bool = False) -> str:
        vm = self.vm(node, vmid)
        error = None if force else self.lock_error(vm)
        if not error and name not in vm["snapshots"]:
            error = f"snapshot '{name}' does not exist"
        if error:
            return self._task(vm, "qmdelsnapshot", user, FAIL_S, error=error)
        vm["config"]["lock"] = "snapshot-delete"
        self.state.changed()
        return self._task(vm, "qmdelsnapshot", user, DELSNAP_S, op="delsnapshot", args={"name": name})

    def _snapshot_deleted(self, task: dict) -> None:
        vm = self.state.data["vms"].get(task["id"])
        if vm is None:
            return
        name = task["args"]["name"]
        snap = vm["snapshots"].pop(name, None)
        parent = snap.get("parent") if snap else None
        for other in vm["snapshots"].values():
            if other.get("parent") == name:
                if parent:
                    other["parent"] = parent
                else:
                    other.pop("parent", None)
        if vm["config"].get("parent") == name:
            if parent:
                vm["config"]["parent"] = parent
            else:
                vm["config"].pop("parent", None)
        vm["config"].pop("lock", None)
        self.state.changed()

    def _unlock(self, task: dict) -> None:
        vm = self.state.data["vms"].get(task["id"])
        if vm is not None:
            vm["config"].pop("lock", None)
            self.state.changed()

    # --- destroy -------------------------------------------------------------------------------

    def destroy(self, node: str, vmid: int, user: str, skiplock: bool = False) -> str:
        vm = self.vm(node, vmid)
        self._check_lock(vm, skiplock)
        if vm["status"] == "running":
            raise failed(f"VM {vmid} is running - destroy failed")
        vm["config"]["lock"] = "destroyed"
        self.state.changed()
        lines = [(1.0, f'  Logical volume "{vmconf.parse_drive(v).get("file", "").split(":", 1)[-1]}" '
                       "successfully removed.")
                 for k, v in sorted(vm["config"].items()) if vmconf.is_drive(k) and "media=cdrom" not in v]
        return self._task(vm, "qmdestroy", user, DESTROY_S, op="destroy", lines=lines)

    def _destroyed(self, task: dict) -> None:
        vm = self.state.data["vms"].pop(task["id"], None)
        if vm is None:
            return
        guest, vmid = self.state.guest, vm["vmid"]
        self.state.ipam_release(vmid)
        self.state.defer(lambda: guest.destroy(vmid))
        self.state.changed()

    # --- status --------------------------------------------------------------------------------

    def uptime(self, vm: dict) -> int:
        return int(max(0.0, self.state.now() - vm["started"])) if vm["status"] == "running" and vm["started"] else 0

    def usage(self, vm: dict) -> tuple[float, int]:
        """(cpu fraction of the VM's vCPUs, memory bytes in use) of a running VM."""
        if vm["status"] != "running":
            return 0.0, 0
        mem = vmconf.memory_mib(vm["config"]) * 1024 * 1024
        booting = self.state.guest.boot_state(vm["vmid"]) == "booting"
        return (0.35 if booting else 0.04), int(mem * (0.45 if booting else 0.62))

    def status_current(self, vm: dict) -> dict:
        config = vm["config"]
        maxmem = vmconf.memory_mib(config) * 1024 * 1024
        boot = next((vmconf.parse_drive(config[k]) for k in sorted(config) if vmconf.is_drive(k)), {})
        cpu, mem = self.usage(vm)
        running = vm["status"] == "running"
        uptime = self.uptime(vm)
        status: dict = {
            "vmid": vm["vmid"], "name": config.get("name", f"VM {vm['vmid']}"), "status": vm["status"],
            "qmpstatus": vm["status"], "cpus": vmconf.vcpus(config), "maxmem": maxmem, "mem": mem,
            "maxdisk": vmconf.drive_size(boot), "disk": 0, "cpu": cpu, "uptime": uptime,
            "diskread": uptime * 2_400_000 if running else 0, "diskwrite": uptime * 1_100_000 if running else 0,
            "netin": uptime * 900 if running else 0, "netout": uptime * 400 if running else 0,
            "ha": {"managed": 0},
        }
        if vmconf.agent_enabled(config):
            status["agent"] = 1
        if running:
            status["pid"] = vm["qemu_pid"]
            status["running-machine"] = f"pc-q35-{QEMU_VERSION.get(self.major, '10.1.2')[:4]}+pve0" \
                if config.get("machine", "").startswith("q35") else f"pc-i440fx-{QEMU_VERSION.get(self.major)[:4]}+pve0"
            status["running-qemu"] = QEMU_VERSION.get(self.major, "10.1.2")
            if vmconf.balloon_mib(config) > 0:
                status["balloon"] = vmconf.balloon_mib(config) * 1024 * 1024
        if config.get("lock"):
            status["lock"] = config["lock"]
        if config.get("tags"):
            status["tags"] = config["tags"]
        if self.major >= 9:
            status["memhost"] = mem
            pressure = 0.12 if running else 0
            status.update({"pressurecpusome": pressure, "pressurecpufull": 0, "pressureiosome": pressure / 2,
                           "pressureiofull": pressure / 3, "pressurememorysome": 0, "pressurememoryfull": 0})
        return status

    def list_entry(self, vm: dict) -> dict:
        status = self.status_current(vm)
        entry = {k: status[k] for k in ("vmid", "name", "status", "cpus", "maxmem", "mem", "maxdisk", "disk",
                                        "cpu", "uptime", "diskread", "diskwrite", "netin", "netout")}
        for key in ("pid", "lock", "tags"):
            if key in status:
                entry[key] = status[key]
        return entry

    def running_memory(self, node: str) -> int:
        return sum(vmconf.memory_mib(vm["config"]) * 1024 * 1024
                   for vm in self.vms(node) if vm["status"] == "running")

    def busy_threads(self, node: str) -> float:
        return sum(vmconf.vcpus(vm["config"]) * self.usage(vm)[0] for vm in self.vms(node))

    # --- guest agent ---------------------------------------------------------------------------

    def agent(self, node: str, vmid: int) -> dict:
        vm = self.vm(node, vmid)
        if not vmconf.agent_enabled(vm["config"]):
            raise failed("No QEMU guest agent configured")
        if vm["status"] != "running":
            raise failed(f"VM {vmid} is not running")
        if not self.state.guest.agent_running(int(vmid)):
            raise failed("QEMU guest agent is not running")
        return vm
