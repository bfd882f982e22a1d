"""What the lab host reports follows Proxmox's source: cpuinfo counts, memory per version, storage, OVA."""

from __future__ import annotations

import pytest

from backend.lab.profiles import GIB, OVA_DISK_SIZE
from tests.lab_pve_support import OVA_DISK, client, start_world, wait_task

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture
def seed(tmp_path):
    world = start_world(tmp_path / "seed")
    yield client(world)
    world.stop()


@pytest.fixture
def big(tmp_path):
    world = start_world(tmp_path / "big", profile="big")
    yield client(world)
    world.stop()


def test_seed_cpuinfo_counts_threads_cores_and_sockets(seed):
    cpu = seed.nodes("pve").status.get()["cpuinfo"]
    assert (cpu["cpus"], cpu["cores"], cpu["sockets"]) == (24, 12, 1)
    assert cpu["model"] == "AMD Ryzen Threadripper 2920X 12-Core Processor"
    assert cpu["mhz"] == "3500.000" and cpu["hvm"] == 1 and " svm " in f" {cpu['flags']} "


def test_big_cpuinfo_cores_are_summed_over_both_sockets(big):
    nodes = big.nodes.get()
    assert [n["node"] for n in nodes] == ["pve1", "pve2", "pve3"]
    cpu = big.nodes("pve2").status.get()["cpuinfo"]
    assert (cpu["cpus"], cpu["cores"], cpu["sockets"]) == (64, 32, 2)
    assert nodes[1]["maxcpu"] == 64


def test_memory_semantics_9x_has_available_and_free_is_raw_memfree(seed):
    memory = seed.nodes("pve").status.get()["memory"]
    assert memory["used"] == memory["total"] - memory["available"]
    assert memory["free"] < memory["available"]  # free is MemFree, not what is available
    assert memory["total"] / GIB == pytest.approx(125.8, abs=0.1)


def test_memory_semantics_84_has_no_available_and_free_plus_used_is_not_total(big):
    status = big.nodes("pve1").status.get()
    memory = status["memory"]
    assert "available" not in memory
    assert memory["free"] + memory["used"] < memory["total"]
    assert status["pveversion"] == "pve-manager/8.4.1/2a5fa54a8503f96f"
    assert big.version.get()["release"] == "8.4"


def test_nextid_and_a_taken_vmid(seed):
    assert seed.cluster.nextid.get() == "100"
    seed.nodes("pve").qemu.post(vmid=100, name="a")
    assert int(seed.cluster.nextid.get()) == 101
    assert seed.cluster.nextid.get(vmid=250) == "250"
    with pytest.raises(Exception) as info:
        seed.cluster.nextid.get(vmid=100)
    assert info.value.errors == {"vmid": "VM 100 already exists"}


def test_storages_with_content_filter_and_the_ova(seed):
    images = seed.nodes("pve").storage.get(content="images", enabled=1)
    assert [s["storage"] for s in images] == ["local-lvm"]
    assert images[0]["avail"] > 1000 * GIB
    ova = seed.nodes("pve").storage("local").content.get(content="import")
    assert ova == [{"volid": "local:import/vast-5.4.0-loopback.ova", "format": "ova", "size": 21806333952,
                    "ctime": 1766966400, "content": "import"}]


def test_import_metadata_shape_and_the_volume_without_storage_prefix(seed):
    meta = seed.nodes("pve").storage("local")("import-metadata").get(volume="import/vast-5.4.0-loopback.ova")
    assert meta["type"] == "vm" and meta["source"] == "import/vast-5.4.0-loopback.ova"
    assert meta["disks"] == {"scsi0": {"volid": OVA_DISK, "size": OVA_DISK_SIZE}}
    assert meta["create-args"]["memory"] == "65536" and meta["net"]["net0"]["model"] == "vmxnet3"
    assert {"type": "ova-needs-extracting"} in meta["warnings"]
    with pytest.raises(Exception) as info:  # the full volid doubles the storage prefix, as on a real host
        seed.nodes("pve").storage("local")("import-metadata").get(volume="local:import/vast-5.4.0-loopback.ova")
    assert info.value.status_code == 500


def test_bridges_cluster_resources_and_status(seed, big):
    assert [n["iface"] for n in seed.nodes("pve").network.get(type="bridge")] == ["vmbr0"]
    kinds = {r["type"] for r in seed.cluster.resources.get()}
    assert kinds == {"node", "storage", "sdn"}
    assert all(r["type"] == "storage" for r in seed.cluster.resources.get(type="storage"))
    assert [r["type"] for r in big.cluster.status.get()] == ["cluster", "node", "node", "node"]
    assert seed.cluster.status.get()[0]["name"] == "pve"


def test_unknown_node_is_an_error(seed):
    with pytest.raises(Exception) as info:
        seed.nodes("pve9").status.get()
    assert info.value.status_code == 500


def test_big_is_a_three_node_cluster_with_others_vms_running(big):
    """GET /cluster/resources answers as Proxmox does: a node row per node, a storage row per node
    and storage (`local` on each), the VMs of every node with their node, vCPUs and memory."""
    rows = big.cluster.resources.get()
    nodes = {r["node"]: r for r in rows if r["type"] == "node"}
    assert sorted(nodes) == ["pve1", "pve2", "pve3"] and {r["maxcpu"] for r in nodes.values()} == {64}
    assert {r["id"] for r in rows if r["type"] == "storage" and r["storage"] == "local"} == {
        "storage/pve1/local", "storage/pve2/local", "storage/pve3/local"}
    vms = {r["vmid"]: r for r in big.cluster.resources.get(type="vm")}
    assert {(r["node"], r["name"], r["status"], r["maxcpu"]) for r in vms.values()} == {
        ("pve1", "dns-01", "running", 2), ("pve1", "gitlab", "running", 4), ("pve1", "win-build", "stopped", 8),
        ("pve2", "monitoring", "running", 4), ("pve3", "ci-runner-1", "running", 8)}
    assert vms[221]["maxmem"] == 96 * GIB and vms[221]["id"] == "qemu/221" and vms[221]["tags"] == "ci"
    assert [v["vmid"] for v in big.nodes("pve2").qemu.get()] == [211]
    # their memory counts on their node: pve3's 96 GiB VM is in its used memory, pve1's stopped one is not
    used = {n: big.nodes(n).status.get()["memory"]["used"] for n in nodes}
    assert used["pve3"] - used["pve2"] > 80 * GIB and used["pve1"] < used["pve3"]
    assert big.cluster.nextid.get() == "100"


def test_a_shared_storage_counts_the_disks_of_every_node(tmp_path):
    import dataclasses

    from backend.lab.profiles import PROFILES, StorageProfile
    BIG = PROFILES["big"]
    nas = StorageProfile("nas", "nfs", ("images", "import"), 10 * 1000**4, 0, "/mnt/pve/nas", shared=True)
    nodes = tuple(dataclasses.replace(n, storages=(*n.storages, nas)) for n in BIG.nodes)
    world = start_world(tmp_path / "shared", profile=dataclasses.replace(BIG, nodes=nodes))
    try:
        api = client(world)
        wait_task(api, "pve1", api.nodes("pve1").qemu.post(vmid=300, name="a", memory=1024, scsi0="nas:100"))
        shared = {r["node"]: r for r in api.cluster.resources.get(type="storage") if r["storage"] == "nas"}
        assert all(r["shared"] == 1 for r in shared.values())
        assert {r["disk"] for r in shared.values()} == {100 * GIB}  # pve2 and pve3 see pve1's disk too
    finally:
        world.stop()
