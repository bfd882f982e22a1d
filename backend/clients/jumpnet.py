"""The network as this machine (where vast-loopback runs) sees it: its directly attached IPv4
subnets, and which MAC answers at which address there, read from the kernel's neighbour (ARP)
table after a bounded probe.

This is how a guest's DHCP address is found by its MAC when Proxmox cannot know it (a plain bridge
has no IPAM). It works only when this machine shares the bridge's layer 2 (same switch or VLAN):
ARP does not cross routers, so a guest behind one never shows up here.

The probe: one empty UDP datagram to the discard port (9) of every host address of the attached
subnets that overlap the wanted ones, nearest this machine's own address first and at most
`MAX_PROBE_HOSTS` of them, each making the kernel ask for that address by ARP; then the neighbour
table (`/proc/net/arp`) is read every `POLL_S` until the MAC shows up or `wait_s` (wall seconds: the
kernel's own timing) has passed. Nothing needs privileges.

Self-contained on purpose (standard library only, no package imports): besides being imported, its
source runs as a program wherever this machine's network probes must run (`Target.probe_prefix`):
`python -c LOADER REQUEST_JSON` with this source on stdin prints the answer as one JSON object.
Linux only (SIOCGIFADDR ioctls, /proc/net/arp); elsewhere the answer says so.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import sys
import time

SIOCGIFFLAGS = 0x8913
SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891B
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
ATF_COM = 0x2  # /proc/net/arp "Flags": the neighbour answered (entry complete)
ARP_TABLE = "/proc/net/arp"
DISCARD_PORT = 9
MAX_PROBE_HOSTS = 512  # a /23; the kernel's neighbour table holds 1024 entries before it complains
SENDS_PER_SOCKET = 64  # unresolved datagrams wait in the socket's send buffer until ARP answers
POLL_S = 0.02
LOADER = "import sys;exec(compile(sys.stdin.read(),'jumpnet','exec'),{'__name__':'__main__'})"


def _ioctl(sock: socket.socket, request: int, name: str) -> bytes:
    import fcntl

    return fcntl.ioctl(sock.fileno(), request, struct.pack("256s", name.encode()[:15]))


def attached_networks() -> list[dict]:
    """[{iface, address, cidr}]: each up, non-loopback interface's IPv4 address and its subnet."""
    if not sys.platform.startswith("linux"):
        raise OSError(f"reading this machine's interfaces needs Linux (this is {sys.platform})")
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                flags = struct.unpack("H", _ioctl(sock, SIOCGIFFLAGS, name)[16:18])[0]
                if not flags & IFF_UP or flags & IFF_LOOPBACK:
                    continue
                address = socket.inet_ntoa(_ioctl(sock, SIOCGIFADDR, name)[20:24])
                mask = socket.inet_ntoa(_ioctl(sock, SIOCGIFNETMASK, name)[20:24])
            except OSError:  # gone meanwhile, or no IPv4 address
                continue
            network = ipaddress.IPv4Interface(f"{address}/{mask}").network
            found.append({"iface": name, "address": address, "cidr": str(network)})
    return found


def neighbours(path: str = ARP_TABLE) -> list[dict]:
    """[{ip, mac, iface, complete}] from the kernel's IPv4 neighbour table."""
    rows = []
    with open(path, encoding="ascii", errors="replace") as table:
        next(table, None)  # header
        for line in table:
            parts = line.split()
            if len(parts) < 6:
                continue
            ip, _, flags, mac, _, iface = parts[:6]
            rows.append({"ip": ip, "mac": mac.upper(), "iface": iface, "complete": bool(int(flags, 16) & ATF_COM)})
    return rows


def nearest_hosts(own: str, cidr: str, limit: int) -> list[str]:
    """Host addresses of `cidr` other than `own`, nearest `own` first, at most `limit`."""
    network = ipaddress.IPv4Network(cidr)
    me = int(ipaddress.IPv4Address(own))
    if network.prefixlen >= 31:
        return [str(a) for a in network if int(a) != me][:limit]
    low, high = int(network.network_address) + 1, int(network.broadcast_address) - 1
    found: list[str] = []
    step = 1
    while len(found) < limit and (me - step >= low or me + step <= high):
        for candidate in (me - step, me + step):
            if low <= candidate <= high and len(found) < limit:
                found.append(str(ipaddress.IPv4Address(candidate)))
        step += 1
    return found


def _wanted(networks: list[dict], within: list[str] | None) -> list[dict]:
    if not within:
        return networks
    nets = [ipaddress.IPv4Network(w, strict=False) for w in within]
    return [n for n in networks if any(ipaddress.IPv4Network(n["cidr"]).overlaps(w) for w in nets)]


def _match(mac: str, networks: list[dict], path: str) -> dict | None:
    nets = [ipaddress.IPv4Network(n["cidr"]) for n in networks]
    for row in neighbours(path):
        if row["complete"] and row["mac"] == mac and any(ipaddress.IPv4Address(row["ip"]) in n for n in nets):
            return row
    return None


def _send(targets: list[str]) -> int:
    """One empty datagram to each target's discard port; returns how many left this machine."""
    sent = 0
    for start in range(0, len(targets), SENDS_PER_SOCKET):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            for ip in targets[start:start + SENDS_PER_SOCKET]:
                try:
                    sock.sendto(b"", (ip, DISCARD_PORT))
                    sent += 1
                except OSError:  # unreachable, no buffer: that address is not probed this time
                    continue
    return sent


def find(mac: str, within: list[str] | None = None, wait_s: float = 1.0, max_hosts: int = MAX_PROBE_HOSTS,
         path: str = ARP_TABLE) -> dict:
    """Where `mac` answers on this machine's subnets that overlap `within` (all of them without it).

    Returns {address, iface, probed, networks, elapsed_s}; `address` is None when it did not answer.
    """
    started = time.monotonic()
    mac = mac.upper()
    networks = _wanted(attached_networks(), within)
    answer = {"address": None, "iface": None, "probed": 0, "networks": [n["cidr"] for n in networks]}
    hit = _match(mac, networks, path) if networks else None
    if hit is None and networks:
        share = max(1, max_hosts // len(networks))
        targets = [ip for n in networks for ip in nearest_hosts(n["address"], n["cidr"], share)]
        answer["probed"] = _send(targets)
        deadline = started + wait_s
        while hit is None and time.monotonic() < deadline:
            time.sleep(POLL_S)
            hit = _match(mac, networks, path)
    if hit is not None:
        answer.update(address=hit["ip"], iface=hit["iface"])
    answer["elapsed_s"] = round(time.monotonic() - started, 3)
    return answer


def handle(request: dict) -> dict:
    """One request: {"op": "networks"} or {"op": "find", "mac", "within", "wait_s", "max_hosts"}."""
    try:
        if request.get("op") == "networks":
            return {"networks": attached_networks()}
        if request.get("op") == "find":
            return find(str(request["mac"]), request.get("within"), float(request.get("wait_s", 1.0)),
                        int(request.get("max_hosts", MAX_PROBE_HOSTS)))
        return {"error": f"unknown request {request.get('op')!r}"}
    except (OSError, ValueError, KeyError) as exc:
        return {"error": f"{exc.__class__.__name__}: {exc}"}


def main(argv: list[str]) -> int:
    print(json.dumps(handle(json.loads(argv[0]) if argv else {})))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
