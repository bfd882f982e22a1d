"""How long the neighbour-table source of the guest's address takes (backend/steps/guestaddr.py), on the
lab's real network namespaces (backend/lab/segment.py): the jump host on the LAN's /24 and N guest
NICs answering ARP.

Measured through the product's own path (`guestaddr.run_probe` under the lab's `probe_prefix`, so
nsenter and the Python start-up are counted):
  - networks:        reading this machine's attached subnets;
  - find (new guest): a probe round for a guest NIC that came up since the round before (which
                     asked for every address, unanswered), POLL_S earlier: a first boot's case;
  - find (known):    the same MAC again (already in the neighbour table: no probe);
  - find (absent):   a probe round for a MAC nobody has (bounded by guestaddr.NEIGHBOUR_WAIT_S).

    .venv/bin/python bench/address_probe.py [--rounds N] [--guests N] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backend.clock import Clock  # noqa: E402
from backend.lab import facts  # noqa: E402
from backend.lab.segment import LabSegment  # noqa: E402
from backend.secrets import Secret  # noqa: E402
from backend.steps import guestaddr  # noqa: E402
from backend.target import Target  # noqa: E402


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"n": len(samples), "median_ms": round(statistics.median(ordered) * 1000, 1),
            "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1)}


async def measure(rounds: int, guests: int) -> list[dict]:
    segment = LabSegment().start()
    try:
        macs = [f"BC:24:11:00:{i // 256:02X}:{i % 256:02X}" for i in range(guests)]
        for index, mac in enumerate(macs):
            segment.plug(200 + index, mac, facts.LAN_BRIDGE)
            segment.configure(200 + index, f"{facts.LAN_PREFIX}.{facts.LAN_DHCP_FIRST + index}", facts.LAN_PREFIXLEN)
        segment.wait_idle()
        target = Target(label="bench", proxmox_url="https://127.0.0.1:8006", token_id="a@pam!b",
                        token_secret=Secret("unused"), clock=Clock.wall(), probe_prefix=segment.probe_prefix())
        lan = (f"{facts.LAN_PREFIX}.0/{facts.LAN_PREFIXLEN}",)
        fresh = iter(range(guests, guests + rounds))

        async def new_guest() -> str:
            """A guest NIC that came up since the last round, as during a first boot: the round before
            asked for every address (nobody answered), then the product waited its POLL_S."""
            await guestaddr.from_neighbours(target, "BC:24:11:FF:FF:FE", lan)
            await asyncio.sleep(guestaddr.POLL_S)
            index = next(fresh)
            mac = f"BC:24:11:01:{index // 256:02X}:{index % 256:02X}"
            segment.plug(200 + index, mac, facts.LAN_BRIDGE)
            segment.configure(200 + index, f"{facts.LAN_PREFIX}.{facts.LAN_DHCP_FIRST + index}", facts.LAN_PREFIXLEN)
            segment.wait_idle()
            return mac

        async def fixed(mac: str) -> str:
            return mac

        rows = []
        for what, prepare, call in (
            ("networks", lambda: fixed(""), lambda mac: guestaddr.local_networks(target)),
            ("find (new guest)", new_guest, lambda mac: guestaddr.from_neighbours(target, mac, lan)),
            ("find (known)", lambda: fixed(macs[-1]), lambda mac: guestaddr.from_neighbours(target, mac, lan)),
            ("find (absent)", lambda: fixed("BC:24:11:FF:FF:FF"),
             lambda mac: guestaddr.from_neighbours(target, mac, lan)),
        ):
            samples, probed, found = [], 0, 0
            for _ in range(rounds):
                mac = await prepare()
                started = time.perf_counter()
                answer = await call(mac)
                samples.append(time.perf_counter() - started)
                if isinstance(answer, dict):
                    probed = max(probed, answer.get("probed", 0))
                    found += bool(answer.get("address"))
            rows.append({"what": what, "guests": guests, "probed": probed, "found": found, **summary(samples)})
        return rows
    finally:
        segment.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--guests", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.rounds, args.guests))
    for row in rows:
        print(f"{row['what']:16} {row['median_ms']:8.1f} ms median  {row['p95_ms']:8.1f} ms p95  "
              f"({row['n']} rounds, found in {row['found']}, up to {row['probed']} addresses probed, "
              f"{row['guests']} guests on the LAN)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
