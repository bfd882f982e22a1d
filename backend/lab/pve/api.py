"""The endpoints the lab serves, by method and schema path template, written by hand.

Each handler gets the (already verified) parameters as strings, the URI parameters included, and
the authenticated user (`root@pam` for a ticket, `root@pam!vlb` for a token, as in UPIDs), and
returns the `data` of the answer. Errors are `ApiError`s with Proxmox's status and message.
Response shapes copy the Proxmox source (keys the schema does not list included).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

from backend.lab import facts
from backend.lab.profiles import OVA_DISK_SIZE, OVA_NAME
from backend.lab.pve import host, vmconf
from backend.lab.pve.errors import ApiError, failed, param_error
from backend.lab.pve.pvestate import PveState
from backend.lab.pve.qemu import Qemu, ova_disk_name
from backend.lab.pve.tasks import list_view, log_view, status_view

Handler = Callable[["PveApi", dict[str, str], str], object]
ROUTES: dict[tuple[str, str], Handler] = {}


def route(method: str, template: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES[(method, template)] = handler
        return handler

    return register


def match_template(path: str) -> tuple[str, dict[str, str]] | None:
    """Route without the schema file: match a concrete path against the templates served here."""
    segments = [s for s in path.strip("/").split("/") if s]
    for _, template in ROUTES:
        parts = [s for s in template.strip("/").split("/") if s]
        if len(parts) != len(segments):
            continue
        params: dict[str, str] = {}
        for part, segment in zip(parts, segments, strict=True):
            if part.startswith("{"):
                params[part[1:-1]] = segment
            elif part != segment:
                break
        else:
            return template, params
    return None


def _bool(params: dict[str, str], key: str) -> bool:
    return params.get(key) in ("1", "on", "yes", "true")


def _int(params: dict[str, str], key: str, default: int | None = None) -> int | None:
    value = params.get(key)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise param_error({key: f"type check ('integer') failed - got '{value}'"}) from None


class PveApi:
    """The lab host's API: state + VM operations + read models."""

    def __init__(self, state: PveState, fingerprint: str) -> None:
        self.state = state
        self.qemu = Qemu(state)
        self.fingerprint = fingerprint

    @property
    def profile(self):
        return self.state.profile

    def call(self, method: str, template: str, params: dict[str, str], user: str) -> object:
        handler = ROUTES.get((method, template))
        if handler is None:
            raise ApiError(501, f"Method '{method} {template}' not implemented")
        return handler(self, params, user)

    def storages(self, node_name: str) -> list[dict]:
        node = self.state.node(node_name)
        return [host.storage_entry(self.profile, s, self.state.storage_content(s),
                                   self.state.storage_vm_bytes(node, s.storage)) for s in node.storages]

    def uptime(self) -> int:
        return int(self.state.now() - self.state.data["boot_time"])


# --- version, nodes, cluster -------------------------------------------------------------------


@route("GET", "/version")
def _version(api: PveApi, p: dict, user: str) -> object:
    version = api.profile.pve_version
    return {"version": version, "release": ".".join(version.split(".")[:2]), "repoid": api.profile.repoid}


@route("GET", "/nodes")
def _nodes(api: PveApi, p: dict, user: str) -> object:
    rows = []
    for node in api.profile.nodes:
        status = _node_status(api, {"node": node.node}, user)
        rows.append({
            "node": node.node, "status": "online", "type": "node", "id": f"node/{node.node}",
            "cpu": status["cpu"], "maxcpu": node.threads, "mem": status["memory"]["used"],
            "maxmem": node.mem_total, "disk": status["rootfs"]["used"], "maxdisk": status["rootfs"]["total"],
            "uptime": status["uptime"], "level": "", "ssl_fingerprint": api.fingerprint,
        })
    return rows


@route("GET", "/nodes/{node}")
def _node_index(api: PveApi, p: dict, user: str) -> object:
    api.state.node(p["node"])
    return [{"name": n} for n in ("qemu", "storage", "network", "tasks", "status", "version")]


@route("GET", "/nodes/{node}/status")
def _node_status(api: PveApi, p: dict, user: str) -> object:
    node = api.state.node(p["node"])
    return host.node_status(api.profile, node, uptime=api.uptime(), vm_bytes=api.qemu.running_memory(node.node),
                            busy_threads=api.qemu.busy_threads(node.node), storages=api.storages(node.node))


@route("GET", "/nodes/{node}/version")
def _node_version(api: PveApi, p: dict, user: str) -> object:
    api.state.node(p["node"])
    return _version(api, p, user)


@route("GET", "/cluster/status")
def _cluster_status(api: PveApi, p: dict, user: str) -> object:
    rows: list[dict] = []
    profile = api.profile
    if profile.cluster_name:
        rows.append({"type": "cluster", "id": "cluster", "name": profile.cluster_name,
                     "nodes": len(profile.nodes), "quorate": 1, "version": len(profile.nodes)})
    for index, node in enumerate(profile.nodes):
        rows.append({"type": "node", "id": f"node/{node.node}", "name": node.node, "ip": host.node_ip(profile, node),
                     "local": 1 if index == 0 else 0, "nodeid": index + 1 if profile.cluster_name else 0,
                     "online": 1, "level": ""})
    return rows


@route("GET", "/cluster/resources")
def _cluster_resources(api: PveApi, p: dict, user: str) -> object:
    kind = p.get("type")
    rows: list[dict] = []
    major = host.major(api.profile.pve_version)
    for node in api.profile.nodes:
        if kind in (None, "node"):
            status = _node_status(api, {"node": node.node}, user)
            rows.append({"id": f"node/{node.node}", "type": "node", "node": node.node, "status": "online",
                         "cpu": status["cpu"], "maxcpu": node.threads, "mem": status["memory"]["used"],
                         "maxmem": node.mem_total, "disk": status["rootfs"]["used"],
                         "maxdisk": status["rootfs"]["total"], "uptime": status["uptime"], "level": "",
                         "cgroup-mode": 2})
        if kind in (None, "storage"):
            for entry in api.storages(node.node):
                rows.append({"id": f"storage/{node.node}/{entry['storage']}", "type": "storage",
                             "node": node.node, "storage": entry["storage"], "status": "available",
                             "plugintype": entry["type"], "content": entry["content"], "shared": entry["shared"],
                             "disk": entry["used"], "maxdisk": entry["total"]})
        if kind in (None, "sdn"):
            for zone in ("localnetwork", *((facts.SDN_ZONE,) if api.profile.sdn_vnet else ())):
                rows.append({"id": f"sdn/{node.node}/{zone}", "type": "sdn", "sdn": zone, "node": node.node,
                             "status": "ok"})
    if kind in (None, "vm"):
        for vm in api.qemu.vms():
            entry = api.qemu.list_entry(vm)
            row = {"id": f"qemu/{vm['vmid']}", "type": "qemu", "node": vm["node"], "template": 0,
                   "maxcpu": entry["cpus"], **{k: v for k, v in entry.items() if k != "cpus"}}
            if major >= 9:
                row["memhost"] = entry["mem"]
            rows.append(row)
    return rows


@route("GET", "/cluster/nextid")
def _nextid(api: PveApi, p: dict, user: str) -> object:
    used = set(api.state.data["vms"])
    wanted = p.get("vmid")
    if wanted is not None:
        if wanted in used:
            raise param_error({"vmid": f"VM {wanted} already exists"})
        return wanted
    return str(next(n for n in range(100, 1_000_000_000) if str(n) not in used))


@route("GET", "/cluster/sdn/ipams")
def _ipams(api: PveApi, p: dict, user: str) -> object:
    if p.get("type") not in (None, "pve"):
        return []
    return [{"ipam": "pve", "type": "pve", "digest": "0" * 40}]


@route("GET", "/cluster/sdn/ipams/{ipam}")
def _ipam(api: PveApi, p: dict, user: str) -> object:
    if p["ipam"] != "pve":
        raise failed(f"sdn '{p['ipam']}' does not exist")
    return {"ipam": "pve", "type": "pve", "digest": "0" * 40}


@route("GET", "/cluster/sdn/ipams/{ipam}/status")
def _ipam_status(api: PveApi, p: dict, user: str) -> object:
    """Only the pve IPAM, only zones with IPAM and DHCP (facts.IPAM_STATUS_PVE_ONLY): no entry for a
    VM on a plain bridge, ever (facts.IPAM_ONLY_ON_DHCP_VNETS)."""
    if p["ipam"] != "pve":
        raise failed("Currently only PVE IPAM is supported!")
    if not api.profile.sdn_vnet:
        return []
    where = {"zone": facts.SDN_ZONE, "subnet": facts.SDN_SUBNET, "vnet": facts.SDN_VNET}
    rows: list[dict] = [{**where, "ip": facts.SDN_GATEWAY, "gateway": 1}]
    for mac, entry in sorted(api.state.ipam_entries().items(), key=lambda item: item[1]["ip"]):
        rows.append({**where, "ip": entry["ip"], "mac": mac, "vmid": entry["vmid"], "hostname": entry["hostname"]})
    return rows


@route("GET", "/cluster/sdn/zones")
def _sdn_zones(api: PveApi, p: dict, user: str) -> object:
    if not api.profile.sdn_vnet or p.get("type") not in (None, facts.SDN_ZONE_TYPE):
        return []
    return [{"zone": facts.SDN_ZONE, "type": facts.SDN_ZONE_TYPE, "ipam": facts.SDN_IPAM, "dhcp": facts.SDN_DHCP,
             "digest": "0" * 40}]


@route("GET", "/cluster/sdn/vnets")
def _sdn_vnets(api: PveApi, p: dict, user: str) -> object:
    if not api.profile.sdn_vnet:
        return []
    return [{"vnet": facts.SDN_VNET, "zone": facts.SDN_ZONE, "type": "vnet", "digest": "0" * 40}]


# --- storage and network -----------------------------------------------------------------------


@route("GET", "/nodes/{node}/storage")
def _storage_index(api: PveApi, p: dict, user: str) -> object:
    rows = api.storages(p["node"])
    if p.get("storage"):
        rows = [r for r in rows if r["storage"] == p["storage"]]
    if p.get("content"):
        wanted = set(re.split(r"[,;\s]+", p["content"]))
        rows = [r for r in rows if wanted & set(r["content"].split(","))]
    if _bool(p, "enabled"):
        rows = [r for r in rows if r["enabled"]]
    return rows


@route("GET", "/nodes/{node}/storage/{storage}")
def _storage_node_index(api: PveApi, p: dict, user: str) -> object:
    api.state.storage(api.state.node(p["node"]), p["storage"])
    return [{"subdir": s} for s in ("content", "status", "import-metadata", "upload", "download-url")]


@route("GET", "/nodes/{node}/storage/{storage}/status")
def _storage_status(api: PveApi, p: dict, user: str) -> object:
    api.state.storage(api.state.node(p["node"]), p["storage"])
    entry = next(r for r in api.storages(p["node"]) if r["storage"] == p["storage"])
    return {k: v for k, v in entry.items() if k not in ("storage", "used_fraction")}


@route("GET", "/nodes/{node}/storage/{storage}/content")
def _storage_content(api: PveApi, p: dict, user: str) -> object:
    node = api.state.node(p["node"])
    storage = api.state.storage(node, p["storage"])
    content = api.state.storage_content(storage)
    rows: list[dict] = []
    if "import" in content and storage.storage == node.ova_storage:
        rows += api.state.ova_volumes(node)
    for vm in api.qemu.vms(node.node):
        for key, value in sorted(vm["config"].items()):
            if vmconf.is_drive(key) and value.startswith(f"{storage.storage}:"):
                drive = vmconf.parse_drive(value)
                rows.append({"volid": drive["file"], "format": "raw", "size": vmconf.drive_size(drive),
                             "vmid": vm["vmid"], "content": "images", "ctime": int(api.state.data["created"])})
    if p.get("content"):
        rows = [r for r in rows if r["content"] == p["content"]]
    if p.get("vmid"):
        rows = [r for r in rows if str(r.get("vmid")) == p["vmid"]]
    return rows


@route("GET", "/nodes/{node}/storage/{storage}/import-metadata")
def _import_metadata(api: PveApi, p: dict, user: str) -> object:
    node = api.state.node(p["node"])
    storage = api.state.storage(node, p["storage"])
    volume = p["volume"]
    volid = f"{storage.storage}:{volume}"
    if storage.type != "dir":
        raise failed(f"storage '{storage.storage}' does not support guest imports")
    if not volume.startswith("import/"):
        raise failed(f"unable to parse directory volume name '{volume}'")
    ova = [v for v in api.state.ova_volumes(node) if v["volid"] == volid]
    if not ova or "import" not in api.state.storage_content(storage):
        raise failed(f"volume '{volid}' does not exist")
    stem = OVA_NAME.removesuffix(".ova")
    # As pve-storage answers it (backend.lab.facts, OVA section): no scsihw, the disk keyed by its bus.
    return {
        "type": "vm", "source": volume,
        "create-args": {"name": stem, **facts.OVA_CREATE_ARGS},
        "disks": {facts.OVA_DISK_KEY: {"volid": f"{volid}/{ova_disk_name()}", "size": OVA_DISK_SIZE}},
        "net": {"net0": {"model": facts.OVA_NIC_MODEL}},
        "warnings": [dict(w) for w in facts.OVA_WARNINGS],
    }


@route("GET", "/storage")
def _storage_config_index(api: PveApi, p: dict, user: str) -> object:
    seen: dict[str, dict] = {}
    for node in api.profile.nodes:
        for storage in node.storages:
            seen.setdefault(storage.storage, _storage_config(api, {"storage": storage.storage}, user))
    return list(seen.values())


def _storage_profile(api: PveApi, name: str):
    for node in api.profile.nodes:
        for storage in node.storages:
            if storage.storage == name:
                return storage
    raise failed(f"storage '{name}' does not exist")


@route("GET", "/storage/{storage}")
def _storage_config(api: PveApi, p: dict, user: str) -> object:
    storage = _storage_profile(api, p["storage"])
    config = {"storage": storage.storage, "type": storage.type,
              "content": ",".join(api.state.storage_content(storage)), "digest": _storage_digest(api)}
    if storage.type == "dir":
        config.update({"path": storage.path or "/var/lib/vz", "prune-backups": "keep-all=1", "shared": 0})
    else:
        config.update({"thinpool": "data", "vgname": "pve"})
    return config


def _storage_digest(api: PveApi) -> str:
    """The digest of storage.cfg: changes whenever a storage's content list changes."""
    text = json.dumps(api.state.data["storage_content"], sort_keys=True)
    return hashlib.sha1(f"{api.profile.name}:{text}".encode()).hexdigest()


@route("PUT", "/storage/{storage}")
def _storage_update(api: PveApi, p: dict, user: str) -> object:
    storage = _storage_profile(api, p["storage"])
    if p.get("digest") and p["digest"] != _storage_digest(api):
        raise failed("detected modified configuration - file changed by other user? Try again.")
    if p.get("content") is not None:
        content = [c for c in re.split(r"[,;\s]+", p["content"]) if c]
        allowed = {"dir": {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import"},
                   "lvmthin": {"images", "rootdir"}}.get(storage.type, set())
        bad = [c for c in content if c not in allowed]
        if bad:
            raise param_error({"content": f"storage does not support content type '{bad[0]}'"})
        api.state.data["storage_content"][storage.storage] = sorted(content)
        api.state.changed()
    return {"storage": storage.storage, "type": storage.type}


@route("GET", "/nodes/{node}/network")
def _network(api: PveApi, p: dict, user: str) -> object:
    node = api.state.node(p["node"])
    return host.network(api.profile, node, p.get("type"))


# --- qemu --------------------------------------------------------------------------------------


@route("GET", "/nodes/{node}/qemu")
def _qemu_index(api: PveApi, p: dict, user: str) -> object:
    api.state.node(p["node"])
    return [api.qemu.list_entry(vm) for vm in api.qemu.vms(p["node"])]


@route("POST", "/nodes/{node}/qemu")
def _qemu_create(api: PveApi, p: dict, user: str) -> object:
    if "vmid" not in p:
        raise param_error({"vmid": "property is missing and it is not optional"})
    return api.qemu.create(p["node"], p, user)


@route("GET", "/nodes/{node}/qemu/{vmid}")
def _qemu_vm_index(api: PveApi, p: dict, user: str) -> object:
    api.qemu.vm(p["node"], p["vmid"])
    return [{"subdir": s} for s in ("config", "pending", "status", "snapshot", "agent", "resize")]


@route("DELETE", "/nodes/{node}/qemu/{vmid}")
def _qemu_destroy(api: PveApi, p: dict, user: str) -> object:
    return api.qemu.destroy(p["node"], int(p["vmid"]), user, _bool(p, "skiplock"))


@route("GET", "/nodes/{node}/qemu/{vmid}/config")
def _qemu_config(api: PveApi, p: dict, user: str) -> object:
    vm = api.qemu.vm(p["node"], p["vmid"])
    return api.qemu.config_view(vm, _bool(p, "current"), p.get("snapshot"))


@route("PUT", "/nodes/{node}/qemu/{vmid}/config")
def _qemu_config_put(api: PveApi, p: dict, user: str) -> object:
    api.qemu.update_config(p["node"], int(p["vmid"]), p)
    return None


@route("POST", "/nodes/{node}/qemu/{vmid}/config")
def _qemu_config_post(api: PveApi, p: dict, user: str) -> object:
    upid = api.qemu.update_config_task(p["node"], int(p["vmid"]), p, user)
    return None if p.get("background_delay") else upid  # done within the delay: null, as on a host


@route("GET", "/nodes/{node}/qemu/{vmid}/pending")
def _qemu_pending(api: PveApi, p: dict, user: str) -> object:
    return api.qemu.pending_view(api.qemu.vm(p["node"], p["vmid"]))


@route("PUT", "/nodes/{node}/qemu/{vmid}/resize")
def _qemu_resize(api: PveApi, p: dict, user: str) -> object:
    return api.qemu.resize(p["node"], int(p["vmid"]), p["disk"], p["size"], user, _bool(p, "skiplock"))


@route("GET", "/nodes/{node}/qemu/{vmid}/status")
def _qemu_status_index(api: PveApi, p: dict, user: str) -> object:
    api.qemu.vm(p["node"], p["vmid"])
    return [{"subdir": s} for s in ("current", "start", "stop", "reset", "shutdown", "suspend", "reboot")]


@route("GET", "/nodes/{node}/qemu/{vmid}/status/current")
def _qemu_status(api: PveApi, p: dict, user: str) -> object:
    return api.qemu.status_current(api.qemu.vm(p["node"], p["vmid"]))


@route("POST", "/nodes/{node}/qemu/{vmid}/status/start")
def _qemu_start(api: PveApi, p: dict, user: str) -> object:
    return api.qemu.start(p["node"], int(p["vmid"]), user, _bool(p, "skiplock"))


@route("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown")
def _qemu_shutdown(api: PveApi, p: dict, user: str) -> object:
    return api.qemu.shutdown(p["node"], int(p["vmid"]), user, timeout=_int(p, "timeout"),
                             force_stop=_bool(p, "forceStop"), skiplock=_bool(p, "skiplock"))


@route("POST", "/nodes/{node}/qemu/{vmid}/status/stop")
def _qemu_stop(api: PveApi, p: dict, user: str) -> object:
    return api.qemu.stop(p["node"], int(p["vmid"]), user, _bool(p, "skiplock"))


@route("POST", "/nodes/{node}/qemu/{vmid}/status/reboot")
def _qemu_reboot(api: PveApi, p: dict, user: str) -> object:
    return api.qemu.reboot(p["node"], int(p["vmid"]), user)


@route("GET", "/nodes/{node}/qemu/{vmid}/snapshot")
def _snapshots(api: PveApi, p: dict, user: str) -> object:
    return api.qemu.snapshots_view(api.qemu.vm(p["node"], p["vmid"]))


@route("POST", "/nodes/{node}/qemu/{vmid}/snapshot")
def _snapshot_create(api: PveApi, p: dict, user: str) -> object:
    return api.qemu.snapshot(p["node"], int(p["vmid"]), p["snapname"], p.get("description", ""), user)


@route("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}")
def _snapshot_index(api: PveApi, p: dict, user: str) -> object:
    vm = api.qemu.vm(p["node"], p["vmid"])
    if p["snapname"] not in vm["snapshots"]:
        raise failed(f"snapshot '{p['snapname']}' does not exist")
    return [{"cmd": "rollback"}, {"cmd": "config"}]


@route("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config")
def _snapshot_config(api: PveApi, p: dict, user: str) -> object:
    vm = api.qemu.vm(p["node"], p["vmid"])
    snap = vm["snapshots"].get(p["snapname"])
    if snap is None:
        raise failed(f"snapshot '{p['snapname']}' does not exist")
    return vmconf.as_json({**snap["config"], "snaptime": str(snap["snaptime"]),
                           "description": snap.get("description", "")})


@route("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}")
def _snapshot_delete(api: PveApi, p: dict, user: str) -> object:
    return api.qemu.delete_snapshot(p["node"], int(p["vmid"]), p["snapname"], user, _bool(p, "force"))


@route("POST", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback")
def _snapshot_rollback(api: PveApi, p: dict, user: str) -> object:
    return api.qemu.rollback(p["node"], int(p["vmid"]), p["snapname"], _bool(p, "start"), user)


@route("POST", "/nodes/{node}/qemu/{vmid}/agent/ping")
def _agent_ping(api: PveApi, p: dict, user: str) -> object:
    api.qemu.agent(p["node"], int(p["vmid"]))
    return {"result": {}}


@route("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces")
def _agent_interfaces(api: PveApi, p: dict, user: str) -> object:
    api.qemu.agent(p["node"], int(p["vmid"]))
    return {"result": api.state.guest.agent_interfaces(int(p["vmid"]))}


ROCKY_OSINFO = {"id": "rocky", "kernel-release": "4.18.0-553.el8_10.x86_64",
                "kernel-version": "#1 SMP Fri May 24 13:05:10 UTC 2024", "machine": "x86_64", "name": "Rocky Linux",
                "pretty-name": "Rocky Linux 8.10 (Green Obsidian)", "version": "8.10 (Green Obsidian)",
                "version-id": "8.10"}


@route("GET", "/nodes/{node}/qemu/{vmid}/agent/get-osinfo")
def _agent_osinfo(api: PveApi, p: dict, user: str) -> object:
    api.qemu.agent(p["node"], int(p["vmid"]))
    osinfo = getattr(api.state.guest, "agent_osinfo", None)  # optional hook of the guest side
    return {"result": osinfo(int(p["vmid"])) if callable(osinfo) else dict(ROCKY_OSINFO)}


# --- tasks -------------------------------------------------------------------------------------


@route("GET", "/nodes/{node}/tasks")
def _tasks(api: PveApi, p: dict, user: str) -> object:
    api.state.node(p["node"])
    tasks = sorted((t for t in api.state.data["tasks"].values() if t["node"] == p["node"]),
                   key=lambda t: t["start"], reverse=True)
    if p.get("vmid"):
        tasks = [t for t in tasks if t["id"] == p["vmid"]]
    if p.get("typefilter"):
        tasks = [t for t in tasks if t["type"] == p["typefilter"]]
    source = p.get("source", "archive")
    if source != "all":
        tasks = [t for t in tasks if (t["status"] == "running") == (source == "active")]
    if _bool(p, "errors"):
        tasks = [t for t in tasks if t["status"] == "stopped" and t["exitstatus"] != "OK"]
    start, limit = _int(p, "start", 0) or 0, _int(p, "limit", 50) or 50
    return [list_view(t) for t in tasks[start:start + limit]]


@route("GET", "/nodes/{node}/tasks/{upid}")
def _task_index(api: PveApi, p: dict, user: str) -> object:
    api.state.task(p["node"], p["upid"])
    return [{"name": "log"}, {"name": "status"}]


@route("GET", "/nodes/{node}/tasks/{upid}/status")
def _task_status(api: PveApi, p: dict, user: str) -> object:
    return status_view(api.state.task(p["node"], p["upid"]))


@route("GET", "/nodes/{node}/tasks/{upid}/log")
def _task_log(api: PveApi, p: dict, user: str) -> object:
    task = api.state.task(p["node"], p["upid"])
    rows, total = log_view(task, api.state.now(), _int(p, "start", 0) or 0, _int(p, "limit", 50) or 50)
    return _WithTotal(rows, total)


class _WithTotal(list):
    """A list answer that also carries Proxmox's top-level `total` (task logs)."""

    def __init__(self, rows: list, total: int) -> None:
        super().__init__(rows)
        self.total = total
