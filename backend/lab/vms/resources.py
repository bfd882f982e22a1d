"""The VMS's objects (clusters, vtasks, hosts, cnodes, dnodes, licenses, versions, vms) as the 5.4
REST API returns them, rendered from the guest's VAST world (backend/lab/vast/vaststate.py).

Field names, types and enums follow `vms-openapi-5.4.json`; values follow what the field saw
(build release-5-4-0-2043819, four containers on 11.0.0.1 ports 4100-4400, a trial license).
Times are lab time in the ISO form VMS uses.
"""

from __future__ import annotations

import time
import uuid

from backend.lab.vast.timeline import INTERNAL_IP, NODES
from backend.lab.vast.vaststate import VastWorld

SW_VERSION = "5.4.0.20.2043819"
OS_VERSION = "Rocky Linux 8.10"
CLUSTER_ID = 1
TASK_TIMEOUT_S = 7200


def iso(t: float) -> str:
    micros = int(round(t * 1e6))
    whole, fraction = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{fraction:06d}Z"


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days} days, {clock}" if days else clock


class Renderer:
    """Renders one world snapshot; `base` is the URL prefix of links (https://host:port/api)."""

    def __init__(self, world: VastWorld, scenario: dict, now: float, base: str) -> None:
        self.world = world
        self.scenario = scenario
        self.now = now
        self.base = base.rstrip("/")
        cluster = world.cluster or {}
        self.name = str(cluster.get("name") or "")
        self.build = str(cluster.get("build") or scenario.get("build") or "release-5-4-0-2043819")
        self.ip = str(cluster.get("mgmt_ip") or scenario.get("ip") or "127.0.0.1")

    def _guid(self, *parts: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, "vast-lab:" + ":".join((self.name, *parts))))

    # --- clusters ---

    def clusters(self) -> list[dict]:
        cluster = self.world.cluster
        if cluster is None:
            return []
        state = str(cluster.get("state", "INIT"))
        online_since = cluster.get("online_since")
        healthy = "HEALTHY" if state == "ONLINE" else "UNKNOWN"
        item = {
            "id": CLUSTER_ID,
            "guid": self._guid("cluster"),
            "name": self.name,
            "title": self.name,
            "url": f"{self.base}/clusters/{CLUSTER_ID}/",
            "state": state,
            "leader_state": str(cluster.get("leader_state", "UP")),
            "loopback": True,
            "enabled": True,
            "psnt": self.name,
            "sw_version": SW_VERSION,
            "build": self.build,
            "mgmt_vip": self.ip,
            "leader_cnode": "cnode-1",
            "mgmt_cnode": "cnode-1",
            "upgrade_state": "DONE",
            "ssd_raid_state": healthy,
            "nvram_raid_state": healthy,
            "memory_raid_state": healthy,
            "md_usage_health": healthy,
            "remaining_stripes_health": healthy,
            "deployment_time": iso(float(cluster.get("created", self.now))),
            "uptime": duration(self.now - float(online_since)) if online_since and state == "ONLINE" else "0:00:00",
            "physical_space": 2 * 1024**4 if state == "ONLINE" else 0,
        }
        if online_since:
            item["online_start_time"] = iso(float(online_since))
        return [item]

    # --- vtasks ---

    def vtasks(self) -> list[dict]:
        tasks = []
        for task_id in sorted(self.world.tasks):
            task = self.world.tasks[task_id]
            start = float(task.get("start_time", self.now))
            end = task.get("end_time")
            item = {
                "id": task_id,
                "name": str(task.get("name", "")),
                "state": str(task.get("state", "RUNNING")),
                "start_time": iso(start),
                "execution_time": int((float(end) if end is not None else self.now) - start),
                "timeout_in_seconds": TASK_TIMEOUT_S,
                "messages": self._messages(task),
                "info": {"cluster_id": CLUSTER_ID, "cluster_name": self.name},
            }
            if end is not None:
                item["end_time"] = iso(float(end))
            tasks.append(item)
        return tasks

    def _messages(self, task: dict) -> list | dict:
        """A task's messages in the shape this lab's VMS sends (backend/lab/facts.py VTASK_MESSAGES): a
        list of strings, or an object keyed by the messages' numbers."""
        texts = [str(text) for text in task.get("messages") or ([task["message"]] if task.get("message") else [])]
        if self.scenario.get("behaviour", {}).get("vtask_messages") == "object":
            return {str(number): text for number, text in enumerate(texts, start=1)}
        return texts

    # --- hosts and nodes ---

    def hosts(self) -> list[dict]:
        items = []
        for index, host in enumerate(self.world.hosts, start=1):
            label = str(host.get("label", ""))
            items.append({
                "id": index,
                "name": label,
                "title": label,
                "hostname": "localhost.localdomain",
                "host_label": label,
                "ip": INTERNAL_IP,
                "node_type": str(host.get("node_type", "")),
                "install_state": str(host.get("install_state", "")),
                "state": "ACTIVE" if host.get("install_state") == "INSTALLED" else "INACTIVE",
                "loopback": True,
                "sw_version": SW_VERSION,
                "build": self.build,
                "os_version": OS_VERSION,
                "cluster": self.name,
                "cluster_id": CLUSTER_ID,
                "url": f"{self.base}/hosts/{index}/",
            })
        return sorted(items, key=lambda item: -item["id"])  # the field's listing: 4400, 4300, 4200, 4100

    def _nodes(self, node_type: str) -> list[dict]:
        items = []
        index = 0
        for port, kind, name in NODES:
            if kind.lower() != node_type or name not in self.world.nodes:
                continue
            index += 1
            node = self.world.nodes[name]
            state = str(node.get("state", "INACTIVE"))
            item = {
                "id": index,
                "name": name,
                "title": name,
                "display_name": name,
                "guid": self._guid(name),
                "hostname": "localhost.localdomain",
                "host_label": f"{INTERNAL_IP}-{port}",
                "ip": INTERNAL_IP,
                "mgmt_ip": self.ip,
                "state": state,
                "display_state": state,
                "enabled": True,
                "sync": "SYNCED" if state == "ACTIVE" else "UNKNOWN",
                "os_version": OS_VERSION,
                "build": self.build,
                "cluster": self.name,
                "cluster_id": CLUSTER_ID,
                "url": f"{self.base}/{node_type}s/{index}/",
            }
            if node_type == "cnode":
                item["is_mgmt"] = name == "cnode-1"
            else:
                item["is_primary"] = name == "dnode-1"
            items.append(item)
        return items

    def cnodes(self) -> list[dict]:
        return self._nodes("cnode")

    def dnodes(self) -> list[dict]:
        return self._nodes("dnode")

    # --- licenses, versions, vms ---

    def licenses(self) -> list[dict]:
        lic = self.world.license
        if lic is None:
            return []
        start = float(lic.get("created", self.now))
        return [{
            "id": 1,
            "name": "trial",
            "guid": self._guid("license"),
            "state": str(lic.get("state", "ACTIVE")),
            "start_date": iso(start)[:10],
            "expiration_date": iso(start + 30 * 86400)[:10],
            "period": "1",
            "capacity": "Unlimited",
            "cpu_cores": "Unlimited",
        }]

    def versions(self) -> list[dict]:
        since = float(self.world.vms_up_since or self.now)
        return [{
            "id": 1,
            "name": self.build,
            "title": self.build,
            "build": self.build,
            "sys_version": SW_VERSION,
            "os_version": OS_VERSION,
            "status": "success",
            "created": iso(since),
            "cluster": self.name,
            "url": f"{self.base}/versions/1/",
        }]

    def vms(self) -> list[dict]:
        since = float(self.world.vms_up_since or self.now)
        return [{
            "id": 1,
            "name": "vms",
            "title": "vms",
            "guid": self._guid("vms"),
            "state": "ACTIVE",
            "sw_version": SW_VERSION,
            "build": self.build,
            "ip": self.ip,
            "mgmt_ip": self.ip,
            "mgmt_vip": self.ip,
            "mgmt_cnode": "cnode-1" if self.world.nodes else "",
            "ssl_port": 443,
            "degraded_reason": "",
            "created": iso(since),
            "max_api_tokens_per_user": 5,
            "url": f"{self.base}/vms/1/",
        }]

    def collection(self, name: str) -> list[dict] | None:
        renderer = {
            "clusters": self.clusters, "vtasks": self.vtasks, "hosts": self.hosts, "cnodes": self.cnodes,
            "dnodes": self.dnodes, "licenses": self.licenses, "versions": self.versions, "vms": self.vms,
        }.get(name)
        return renderer() if renderer else None


COLLECTIONS = ("clusters", "vtasks", "hosts", "cnodes", "dnodes", "licenses", "versions", "vms")
# The schema's name for each collection's item (tests validate against it).
SCHEMAS = {"clusters": "Cluster", "vtasks": "VTask", "hosts": "Host", "cnodes": "CNode", "dnodes": "DNode",
           "licenses": "License", "versions": "Version", "vms": "Vms"}
