"""How the client reads Proxmox's answers and writes its requests, without a server."""

from __future__ import annotations

import pytest

from backend.clients import proxmox
from backend.model.hostfacts import GIB

KIB = 1024


def _status(cpus, sockets, cores, total, used, free, *, hvm=None, flags="fpu svm", version="9.1.3"):
    cpuinfo = {"user_hz": 100, "model": "Some CPU", "mhz": "3500.000", "cpus": cpus, "sockets": sockets,
               "cores": cores, "flags": flags}
    if hvm is not None:
        cpuinfo["hvm"] = hvm
    return {"cpuinfo": cpuinfo, "memory": {"total": total, "used": used, "free": free},
            "pveversion": f"pve-manager/{version}/abcdef12", "kversion": "Linux 6.8"}


@pytest.mark.parametrize(
    ("status", "cores", "threads", "sockets", "available_gib"),
    [
        # 1 x 12 cores with SMT (the field report's Threadripper): cpus counts threads
        (_status(24, 1, 12, 128 * GIB, 3 * GIB, 1 * GIB), 12, 24, 1, 125),
        # 2 x 16 cores with SMT: cpuinfo.cores is already the sum over sockets
        (_status(64, 2, 32, 512 * GIB, 100 * GIB, 5 * GIB), 32, 64, 2, 412),
        # PVE 8.4+: free is raw MemFree (small), used = total - MemAvailable; available = total - used
        (_status(16, 1, 8, 64 * GIB, 4 * GIB, 1 * GIB, version="8.4.1"), 8, 16, 1, 60),
    ],
)
def test_node_facts_count_physical_cores_and_real_free_memory(status, cores, threads, sockets, available_gib):
    facts = proxmox.parse_node_facts("pve", status)
    assert (facts.cores, facts.threads, facts.sockets) == (cores, threads, sockets)
    assert round(facts.mem_available_gib) == available_gib
    assert facts.cores_per_socket == cores // sockets


@pytest.mark.parametrize(
    ("hvm", "flags", "expected"),
    [(None, "fpu vmx sse", True), (None, "fpu svm", True), (None, "fpu sse", False), (1, "", True),
     ("0", "vmx", False), (True, "", True)],
)
def test_hardware_virtualization_from_cpuinfo(hvm, flags, expected):
    assert proxmox.parse_node_facts("pve", _status(4, 1, 2, GIB, 0, 0, hvm=hvm, flags=flags)).hvm is expected


def test_version_storages_and_bridges():
    storages = [
        {"storage": "local", "type": "dir", "content": "iso,vztmpl,backup,import", "active": 1, "enabled": 1,
         "shared": 0, "total": 100 * GIB, "used": 24 * GIB, "avail": 76 * GIB, "used_fraction": 0.24},
        {"storage": "local-lvm", "type": "lvmthin", "content": "rootdir,images", "active": 1, "enabled": 1,
         "shared": 0, "total": 1800 * GIB, "used": 3 * GIB, "avail": 1797 * GIB},
        {"storage": "old-nfs", "type": "nfs", "content": "images", "active": 0, "enabled": 0},
        {"storage": "offline", "type": "nfs", "content": "images", "active": 0, "enabled": 1},
    ]
    bridges = [{"iface": "vmbr1", "type": "bridge", "active": 1}, {"iface": "vmbr0", "type": "bridge"}]
    facts = proxmox.parse_node_facts("pve", _status(24, 1, 12, 128 * GIB, 3 * GIB, GIB), storages, bridges, 2)
    assert facts.pve_version == "9.1.3"
    assert [s.storage for s in facts.storages] == ["local", "local-lvm", "offline"]
    lvm = facts.storage("local-lvm")
    assert lvm.holds("images") and lvm.active and round(lvm.avail_gib) == 1797
    assert not facts.storage("offline").active and facts.storage("offline").avail == 0
    assert facts.bridges == ("vmbr0", "vmbr1")
    assert facts.running_vms == 2


def test_booleans_go_out_as_1_or_0_and_none_is_dropped():
    assert proxmox.encode_params({"a": True, "b": False, "c": None, "d": 5, "delete": ["x", "y"]}) == {
        "a": 1, "b": 0, "d": 5, "delete": "x,y"}


@pytest.mark.parametrize("segment", ["../x", "a/b", "", "..", "a b", "q?x=1", "x#y"])
def test_unsafe_path_segments_are_refused(segment):
    with pytest.raises(ValueError):
        proxmox.check_segment(segment)


def test_safe_path_segments_pass():
    upid = "UPID:pve:0000A1B2:0012C3D4:67890ABC:qmcreate:100:root@pam!vlb:"
    for segment in ("pve", 100, "local-lvm", "import-metadata", upid, "pre-install_1"):
        assert proxmox.check_segment(segment) == str(segment)


def test_upid_fields():
    fields = proxmox.upid_fields("UPID:pve2:0000A1B2:0012C3D4:67890ABC:qmcreate:100:root@pam!vlb:")
    assert fields["node"] == "pve2" and fields["type"] == "qmcreate" and fields["id"] == "100"
    assert fields["user"] == "root@pam!vlb"
    assert proxmox.upid_fields("garbage")["node"] == ""


@pytest.mark.parametrize(
    ("exitstatus", "ok"),
    [("OK", True), ("WARNINGS: 2", True), ("WARNINGS: x", False), ("unexpected status", False),
     ("command 'qemu-img convert' failed: exit code 1", False), (None, False), ("", False)],
)
def test_task_success_follows_proxmox(exitstatus, ok):
    assert proxmox.task_succeeded(exitstatus) is ok


@pytest.mark.parametrize(
    ("line", "fraction"),
    [("transferred 6.0 GiB of 600.0 GiB (1.00%)", 0.01), ("transferred 600.0 GiB of 600.0 GiB (100.00%)", 1.0),
     ("importing disk 'local:import/x.ova/d.vmdk' to VM 100 ...", None), ("50%", 0.5)],
)
def test_progress_fraction_from_task_log_lines(line, fraction):
    assert proxmox.progress_fraction(line) == fraction


def test_guest_agent_addresses_skip_loopback_and_ipv6():
    interfaces = [
        {"name": "lo", "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}]},
        {"name": "eth0", "hardware-address": "bc:24:11:00:00:01", "ip-addresses": [
            {"ip-address": "192.168.1.50", "ip-address-type": "ipv4", "prefix": 24},
            {"ip-address": "fe80::1", "ip-address-type": "ipv6", "prefix": 64}]},
        {"name": "docker0", "ip-addresses": [{"ip-address": "172.17.0.1", "ip-address-type": "ipv4"}]},
        {"name": "eth1", "ip-addresses": [{"ip-address": "169.254.3.3", "ip-address-type": "ipv4"}]},
    ]
    assert proxmox.ipv4_addresses(interfaces) == ["192.168.1.50", "172.17.0.1"]


def test_fingerprints_are_normalized():
    assert proxmox.normalize_fingerprint("ab:cd:0f") == "AB:CD:0F"
    assert proxmox.normalize_fingerprint("abcd0f") == "AB:CD:0F"


def test_task_progress_reports_every_line_but_percentages_only_in_5_percent_steps():
    shown: list[tuple[str, float | None]] = []
    log = proxmox._TaskLog(lambda message, fraction: shown.append((message, fraction)))
    log.add(1, "no content")  # an empty log's placeholder is not a line
    log.add(1, "extracting disk1.vmdk from local:import/x.ova")
    for step in range(101):
        log.add(2 + step, f"transferred {step * 6}.0 GiB of 600.0 GiB ({step}.00%)")
    log.add(2, "a line read twice is not repeated")
    log.add(103, "TASK OK")
    assert shown[0] == ("extracting disk1.vmdk from local:import/x.ova", None)
    fractions = [f for _, f in shown[1:]]
    assert fractions == [round(0.05 * i, 2) for i in range(21)]
    assert len(log.lines) == 103 and log.offset == 103


def _client(secret: str = "tok-secret-123456"):
    from backend.clock import Clock
    from backend.secrets import Secret
    from backend.target import Target

    target = Target(label="pve", proxmox_url="https://pve.example:8006", token_id="root@pam!vlb",
                    token_secret=Secret(secret), clock=Clock.wall())
    return proxmox.ProxmoxClient(None, target)  # the API object is not needed to explain an error


def test_a_403_names_the_missing_permission_and_how_to_grant_it():
    from proxmoxer.core import ResourceException

    failure = _client()._classify(
        ResourceException(403, "Forbidden", "Permission check failed (/vms/100, VM.Allocate)"), "create VM 100")
    assert not failure.retryable
    assert failure.error.message == "permission denied: API token root@pam!vlb lacks VM.Allocate on /vms/100 " \
                                    "(needed to create VM 100)"
    assert "pveum acl modify /vms/100 --tokens 'root@pam!vlb'" in failure.error.hint
    assert "privilege separation" in failure.error.hint


def test_a_400_lists_the_parameter_errors():
    from proxmoxer.core import ResourceException

    failure = _client()._classify(ResourceException(
        400, "Bad Request", "Parameter verification failed.",
        errors={"scsi0": "'import-from' requires special syntax", "cores": "value must be at least 1"}), "create VM")
    assert failure.error.message == ("Proxmox refused to create VM: cores: value must be at least 1; "
                                     "scsi0: 'import-from' requires special syntax")
    assert failure.error.errors["cores"] == "value must be at least 1"


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (502, True), (503, True), (596, True),
                                                    (501, False), (404, False), (401, False)])
def test_which_http_errors_are_worth_a_retry(status, retryable):
    from proxmoxer.core import ResourceException

    assert _client()._classify(ResourceException(status, "x", "reason"), "read").retryable is retryable


def test_the_token_secret_never_appears_in_an_error_even_if_the_server_echoes_it():
    from proxmoxer.core import ResourceException

    secret = "echoed-secret-value-42"
    failure = _client(secret)._classify(
        ResourceException(401, "Unauthorized", f"invalid token value {secret}"), "read the version")
    assert secret not in str(failure.error) and secret not in failure.error.reason


def test_timeouts_follow_the_target_clock_with_a_floor():
    from backend.clock import Clock

    assert proxmox.default_timeouts(Clock.wall()) == (10.0, 90.0)
    assert proxmox.default_timeouts(Clock.scaled(600)) == (1.5, 1.5)
    assert proxmox.default_timeouts(Clock.scaled(60)) == (1.5, 1.5)  # 90 s of lab time: no later than real
    assert proxmox.default_timeouts(Clock.scaled(6)) == (1.6666666666666667, 15.0)
