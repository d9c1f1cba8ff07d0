"""The libvirt backend: fast checks against libvirt's test driver, then a real tiny VM booted
through the embedded QEMU driver under software emulation (tests/backends/libvirt_env.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from portal.compute.backends.base import (
    IDEMPOTENCY_METADATA_KEY,
    BackendState,
    NotFound,
    Rejected,
    ServerSpec,
    Transient,
    ZoneCapacity,
)
from portal.compute.backends.libvirt import DEFAULTS, LibvirtBackend
from portal.compute.backends.libvirt_host import METADATA_NS, domain_state
from portal.compute.backends.libvirt_xml import Disks, build_seed_iso, domain_xml, seed_files
from tests.backends import libvirt_env
from tests.backends.libvirt_env import IMAGE_NAME, MARKER, POWEROFF_MARKER, backend_options, wait_for

libvirt_guest = libvirt_env.libvirt_guest
libvirt_root = libvirt_env.libvirt_root
libvirt_backend = libvirt_env.libvirt_backend

B = BackendState
parse_xml = partial(ET.fromstring)  # our own XML, not untrusted input


def spec(zone: str, **changes) -> ServerSpec:
    values = {
        "idempotency_key": str(uuid.uuid4()),
        "name": "web 1",
        "zone": zone,
        "flavor": "s-1vcpu-1gb",
        "vcpus": 1,
        "ram_gib": 1,
        "root_disk_gib": 1,
        "image": IMAGE_NAME,
        "ssh_keys": ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGz0b3Rlc3QgaGVyZQ test@example",),
    }
    return ServerSpec(**values | changes)


def console_log(root: Path, backend_id: str) -> str:
    """The whole serial log (console_output gives only the tail)."""
    return (root / "disks" / backend_id.rsplit("/", 1)[1] / "console.log").read_text(errors="replace")


def booted(backend, backend_id: str, times: int = 1) -> bool:
    # Polling get_server is what moves the embedded driver along (see the backend's docs).
    return backend.get_server(backend_id).state == B.RUNNING and (
        backend.console_output(backend_id).count(MARKER) >= times
    )


# --- libvirt's test driver: an in-memory host, in this process ---------------------------------

UNIT_ZONE = "lv-unit-1"


def host_xml(tmp_path: Path, name: str, *, cpus: int = 4, memory_mib: int = 8192, pool: bool = False) -> str:
    """A test-driver host of the given size; each connection to it starts empty."""
    pool_xml = (
        "<pool type='dir'><name>vms</name><uuid>35bb2ad9-388a-cdfe-461a-b8907f6e53fe</uuid>"
        "<capacity unit='G'>100</capacity><allocation>0</allocation><available unit='G'>100</available>"
        "<target><path>/var/lib/vms</path></target></pool>"
        if pool
        else ""
    )
    path = tmp_path / f"{name}.xml"
    path.write_text(
        f"<node><cpu><mhz>2000</mhz><model>x86_64</model><active>{cpus}</active><nodes>1</nodes>"
        f"<sockets>1</sockets><cores>{cpus}</cores><threads>1</threads></cpu>"
        f"<memory>{memory_mib * 1024}</memory>{pool_xml}</node>"
    )
    return f"test://{path}"


@pytest.fixture
def unit_tools():
    try:
        import libvirt  # noqa: F401
    except ImportError:
        libvirt_env.unavailable("libvirt-python is not installed")
    if not shutil.which("qemu-img") or not (shutil.which("genisoimage") or shutil.which("xorriso")):
        libvirt_env.unavailable(
            "qemu-img and genisoimage (or xorriso) are needed: Debian qemu-utils, genisoimage"
        )


@pytest.fixture
def make_backend(db, tmp_path, unit_tools):
    """make_backend(hosts=[...], **options) -> a LibvirtBackend on test-driver hosts, zone UNIT_ZONE."""
    images = tmp_path / "images"
    images.mkdir()
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(images / "debian-13.qcow2"), "2G"], check=True
    )

    def make(hosts=None, zone_settings=None, **options) -> LibvirtBackend:
        hosts = hosts or [host_xml(tmp_path, "kvm1")]
        return LibvirtBackend(
            "libvirt-unit",
            **{
                "domain_type": "test",
                "image_store": str(images),
                "disk_dir": str(tmp_path / "disks"),
                "network": "none",
                "zones": {UNIT_ZONE: {"hosts": hosts, **(zone_settings or {})}},
                **options,
            },
        )

    return make


def unit_spec(**changes) -> ServerSpec:
    return spec(UNIT_ZONE, **{"image": "Debian 13", "root_disk_gib": 10} | changes)


def define_foreign(backend: LibvirtBackend, uri: str, xml: str) -> None:
    backend.hosts.connection(uri).defineXML(xml)


def test_the_domain_definition_follows_flavor_and_zone_settings():
    wanted = unit_spec(name="db 1", vcpus=2, ram_gib=4)
    disks = Disks(root="/d/root.qcow2", seed="/d/seed.iso", console_log="/d/console.log", directory="/d")
    config = DEFAULTS | {
        "domain_type": "kvm",
        "kernel": "/boot/vmlinuz",
        "initrd": "/boot/initrd",
        "network": "br",
    }
    xml = parse_xml(
        domain_xml(
            spec=wanted, domain_uuid=wanted.idempotency_key, config=config, disks=disks, memory_mib=512
        )
    )

    assert xml.get("type") == "kvm" and xml.findtext("uuid") == wanted.idempotency_key
    assert xml.findtext("name") == f"portal-{wanted.idempotency_key}" and xml.findtext("title") == "db 1"
    ours = xml.find(f"metadata/{{{METADATA_NS}}}server")
    assert ours.findtext(f"{{{METADATA_NS}}}instance-id") == wanted.idempotency_key
    assert ours.findtext(f"{{{METADATA_NS}}}zone") == UNIT_ZONE
    assert (xml.findtext("vcpu"), xml.findtext("memory"), xml.find("memory").get("unit")) == (
        "2",
        "512",
        "MiB",
    )
    assert xml.findtext("os/kernel") == "/boot/vmlinuz" and xml.findtext("os/cmdline") == DEFAULTS["cmdline"]
    assert xml.find("cpu").get("mode") == "host-passthrough"
    disks_xml = xml.findall("devices/disk")
    assert [d.find("source").get("file") for d in disks_xml] == ["/d/root.qcow2", "/d/seed.iso"]
    assert disks_xml[1].find("readonly") is not None
    assert xml.find("devices/interface").get("type") == "network"
    assert xml.find("devices/interface/source").get("network") == "br"
    assert xml.find("devices/serial/log").get("file") == "/d/console.log"

    def interface(**settings):
        config = DEFAULTS | {"domain_type": "qemu"} | settings
        tree = parse_xml(
            domain_xml(
                spec=wanted, domain_uuid=wanted.idempotency_key, config=config, disks=disks, memory_mib=1
            )
        )
        found = tree.find("devices/interface")
        return None if found is None else (found.get("type"), found.find("source") is not None)

    assert interface() == ("user", False)  # nothing configured: user-mode networking
    assert interface(network="none") is None
    assert interface(bridge="br0") == ("bridge", True)


def test_ram_scales_down_for_tiny_test_guests(make_backend):
    backend = make_backend(ram_mib_per_gib=128, max_ram_mib=256)
    config = backend._config(UNIT_ZONE)
    assert [backend._memory_mib(config, gib) for gib in (1, 2, 8)] == [128, 256, 256]
    assert make_backend()._memory_mib(config | {"ram_mib_per_gib": 1024, "max_ram_mib": 0}, 4) == 4096


@pytest.mark.parametrize(
    ("state", "reason", "meta", "expected"),
    [
        ("VIR_DOMAIN_RUNNING", 1, {}, "running"),
        ("VIR_DOMAIN_RUNNING", 1, {"stop-deadline": "1"}, "stopping"),
        ("VIR_DOMAIN_RUNNING", 1, {"stop-deadline": "1", "then-start": "1"}, "rebooting"),
        ("VIR_DOMAIN_SHUTOFF", 1, {"start-after-stop": "1"}, "rebooting"),
        ("VIR_DOMAIN_SHUTDOWN", 1, {}, "stopping"),
        ("VIR_DOMAIN_SHUTOFF", 1, {}, "stopped"),
        ("VIR_DOMAIN_SHUTOFF", 3, {}, "stopped"),  # "crashed": how a shutdown nobody watched is recorded
        ("VIR_DOMAIN_PAUSED", "VIR_DOMAIN_PAUSED_SHUTTING_DOWN", {}, "stopping"),
        ("VIR_DOMAIN_PAUSED", "VIR_DOMAIN_PAUSED_STARTING_UP", {}, "starting"),
        ("VIR_DOMAIN_PAUSED", "VIR_DOMAIN_PAUSED_IOERROR", {}, "error"),
        ("VIR_DOMAIN_PAUSED", "VIR_DOMAIN_PAUSED_MIGRATION", {}, "running"),
        ("VIR_DOMAIN_CRASHED", 1, {}, "error"),
        ("VIR_DOMAIN_NOSTATE", 0, {}, "building"),
    ],
)
def test_libvirt_states_map_to_backend_states(unit_tools, state, reason, meta, expected):
    import libvirt

    reason = getattr(libvirt, reason) if isinstance(reason, str) else reason
    mapped, fault = domain_state(getattr(libvirt, state), reason, meta)
    assert BackendState(mapped) == expected
    assert bool(fault) == (expected == "error")


def test_the_seed_carries_hostname_instance_id_keys_and_user_data(unit_tools):
    wanted = unit_spec(name="Web Shop #1", user_data="#!/bin/sh\necho hello\n")
    files = seed_files(wanted)
    assert files["meta-data"] == f"instance-id: {wanted.idempotency_key}\nlocal-hostname: web-shop-1\n"
    assert "Content-Type: multipart/mixed" in files["user-data"]
    assert wanted.ssh_keys[0] in files["user-data"] and "echo hello" in files["user-data"]
    plain = seed_files(unit_spec())["user-data"]
    assert plain.startswith("#cloud-config\nssh_authorized_keys: [")
    assert json.loads(plain.split(": ", 1)[1]) == list(unit_spec().ssh_keys)
    iso = build_seed_iso(files)
    assert iso[32808:32814].lower() == b"cidata"  # the volume label cloud-init looks for


def test_a_server_goes_to_the_host_with_most_free_memory_and_is_created_once(make_backend, tmp_path):
    small, large = host_xml(tmp_path, "small", memory_mib=4096), host_xml(tmp_path, "large", memory_mib=8192)
    backend = make_backend(hosts=[small, large])
    wanted = unit_spec()

    server = backend.create_server(wanted)
    assert server.state == B.RUNNING and server.backend_id.endswith(f"/{wanted.idempotency_key}")
    assert server.backend_id.startswith(f"{UNIT_ZONE}/")
    assert backend.hosts.connection(large).lookupByUUIDString(wanted.idempotency_key).isActive()
    assert backend.create_server(wanted).backend_id == server.backend_id
    assert len(backend.hosts.connection(large).listAllDomains()) == 1
    assert server.metadata[IDEMPOTENCY_METADATA_KEY] == wanted.idempotency_key
    server_dir = tmp_path / "disks" / wanted.idempotency_key
    assert {p.name for p in server_dir.iterdir()} == {"root.qcow2", "seed.iso"}

    # A stopped server keeps its place. Free: large 7 GiB, small 4 GiB; then large 3, small 4.
    backend.stop_server(server.backend_id)
    backend.create_server(unit_spec(ram_gib=4))
    assert len(backend.hosts.connection(large).listAllDomains()) == 2
    backend.create_server(unit_spec(ram_gib=2))
    assert len(backend.hosts.connection(small).listAllDomains()) == 1
    with pytest.raises(Rejected, match="sold out"):
        backend.create_server(unit_spec(ram_gib=4))
    assert backend.zone_capacity(UNIT_ZONE) == ZoneCapacity(free_vcpus=5, free_ram_gib=5)


def test_find_server_adopts_a_server_created_before_a_crash_and_ignores_foreign_domains(
    make_backend, tmp_path
):
    uri = host_xml(tmp_path, "kvm1")
    backend = make_backend(hosts=[uri])
    lost = unit_spec()  # created by a worker that died before saving the id
    disks = Disks(root="/r", seed="/s", console_log="/c")
    config = backend._config(UNIT_ZONE)
    define_foreign(
        backend,
        uri,
        domain_xml(spec=lost, domain_uuid=lost.idempotency_key, config=config, disks=disks, memory_mib=1024),
    )
    define_foreign(
        backend,
        uri,
        "<domain type='test'><name>the-hosts-own</name><memory>1024</memory><os><type>hvm</type></os></domain>",
    )

    found = backend.find_server(UNIT_ZONE, lost.idempotency_key)
    assert found.state == B.STOPPED and found.name == "web 1" and found.flavor == "s-1vcpu-1gb"
    assert backend.create_server(lost).backend_id == found.backend_id
    # Two attempts racing past find_server: the host-side create adopts, never redefines.
    raced = backend._host(config, uri, "create", domain_uuid=lost.idempotency_key, domain_xml="<not-used/>")
    assert raced["meta"]["instance-id"] == lost.idempotency_key and raced["state"] == "stopped"
    assert [s.idempotency_key for s in backend.list_servers(UNIT_ZONE)] == [lost.idempotency_key]
    assert backend.find_server(UNIT_ZONE, str(uuid.uuid4())) is None


def test_an_unreachable_host_is_transient_never_an_empty_answer(make_backend, tmp_path):
    backend = make_backend(hosts=[host_xml(tmp_path, "kvm1"), "test:///nowhere/kvm2.xml"])
    with pytest.raises(Transient) as raised:
        backend.find_server(UNIT_ZONE, str(uuid.uuid4()))  # it might be on kvm2: "None" would duplicate it
    assert "nowhere" in raised.value.detail and "Traceback" not in raised.value.user_message
    with pytest.raises(Transient):
        backend.list_servers(UNIT_ZONE)  # orphan checks must not conclude kvm2's servers are gone
    with pytest.raises(Transient):
        backend.check_health(UNIT_ZONE)
    assert backend.zone_capacity(UNIT_ZONE) == ZoneCapacity(free_vcpus=4, free_ram_gib=8)  # what answers
    with pytest.raises(Transient, match="not connected"):
        make_backend(hosts=[]).zone_capacity("no-such-zone")


def test_actions_on_the_test_driver(make_backend, tmp_path):
    import libvirt

    backend = make_backend()
    server = backend.create_server(unit_spec())
    sid = server.backend_id

    backend.start_server(sid)  # already running: no-op
    backend.reboot_server(sid)
    backend.reboot_server(sid, hard=True)
    with pytest.raises(Rejected, match="Stop the server"):
        backend.resize_server(sid, flavor="s-2vcpu-2gb", vcpus=2, ram_gib=2)
    backend.stop_server(sid)  # the test driver stops at once
    assert backend.get_server(sid).state == B.STOPPED
    backend.stop_server(sid)  # no-op
    with pytest.raises(Rejected, match="stopped"):
        backend.reboot_server(sid)
    with pytest.raises(Rejected, match="does not fit"):
        backend.resize_server(sid, flavor="huge", vcpus=64, ram_gib=1)
    backend.resize_server(sid, flavor="s-2vcpu-2gb", vcpus=2, ram_gib=2)
    resized = backend.get_server(sid)
    assert resized.state == B.STOPPED and resized.flavor == "s-2vcpu-2gb"
    domain = backend.hosts.connection(backend._config(UNIT_ZONE)["hosts"][0]).lookupByUUIDString(
        server.idempotency_key
    )
    assert domain.info()[3] == 2 and domain.info()[1] == 2 * 1024 * 1024
    backend.start_server(sid)
    assert backend.get_server(sid).state == B.RUNNING

    # The embedded driver's soft reboot: power off (the test driver is off at once), then the
    # next get_server starts it again; a stop meanwhile cancels the second half.
    config, uri = backend._config(UNIT_ZONE), backend._config(UNIT_ZONE)["hosts"][0]
    emulated = {
        "domain_uuid": server.idempotency_key,
        "hard": False,
        "deadline": time.time() + 60,
        "emulate": True,
    }
    backend._host(config, uri, "reboot", **emulated)
    assert domain.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    assert backend.list_servers(UNIT_ZONE)[0].state == B.REBOOTING
    backend.start_server(sid)  # rebooting: nothing to do
    assert backend.get_server(sid).state == B.RUNNING and domain.isActive()
    backend._host(config, uri, "reboot", **emulated)
    backend.stop_server(sid)
    assert backend.get_server(sid).state == B.STOPPED

    backend.delete_server(sid)
    assert not (tmp_path / "disks" / server.idempotency_key).exists()
    with pytest.raises(NotFound):
        backend.get_server(sid)
    with pytest.raises(NotFound):
        backend.start_server(sid)
    backend.delete_server(sid)
    with pytest.raises(NotFound):
        backend.get_server("not-a-libvirt-id")


def test_an_image_missing_from_the_store_is_refused_in_plain_words(make_backend, tmp_path):
    backend = make_backend()
    with pytest.raises(Rejected) as raised:
        backend.create_server(unit_spec(image="Windows 95"))
    assert raised.value.user_message.startswith("The image Windows 95 is not available in zone")
    with pytest.raises(Rejected, match="at least 2 GiB"):
        backend.create_server(unit_spec(root_disk_gib=1))
    assert backend.list_servers(UNIT_ZONE) == []


def test_storage_pool_hosts_get_volumes_and_clean_up_when_they_cannot(make_backend, tmp_path):
    uri = host_xml(tmp_path, "kvm1", pool=True)
    backend = make_backend(hosts=[uri], zone_settings={"storage_pool": "vms"})
    # The test driver creates volumes but cannot upload (a real libvirtd can): the seed fails,
    # and nothing is left behind.
    with pytest.raises(Rejected, match="could not be made") as raised:
        backend.create_server(unit_spec())
    assert "virStorageVolUpload" in raised.value.detail
    assert backend.hosts.connection(uri).storagePoolLookupByName("vms").listVolumes() == []
    assert backend.hosts.connection(uri).listAllDomains() == []


def test_console_output_is_the_tail_of_the_log(make_backend, tmp_path):
    backend = make_backend()
    server = backend.create_server(unit_spec())
    log = tmp_path / "disks" / server.idempotency_key / "console.log"
    assert backend.console_output(server.backend_id) == ""  # nothing printed yet
    log.write_text("".join(f"line {n}\n" for n in range(300)))
    tail = backend.console_output(server.backend_id).splitlines()
    assert len(tail) == 200 and tail[-1] == "line 299"
    backend.delete_server(server.backend_id)
    with pytest.raises(NotFound):
        backend.console_output(server.backend_id)

    # A remote host writes the log into the shared disk_dir, where the portal reads it; with a
    # storage pool the log stays on the host.
    remote_id, other = f"{UNIT_ZONE}/kvm9.example.net/{uuid.uuid4()}", uuid.uuid4()
    (tmp_path / "disks" / remote_id.rsplit("/", 1)[1]).mkdir()
    (tmp_path / "disks" / remote_id.rsplit("/", 1)[1] / "console.log").write_text("login: ")
    assert make_backend(hosts=["qemu+ssh://kvm9.example.net/system"]).console_output(remote_id) == "login: "
    pool = make_backend(hosts=["qemu+ssh://kvm9.example.net/system"], zone_settings={"storage_pool": "vms"})
    assert pool.console_output(f"{UNIT_ZONE}/kvm9.example.net/{other}") == ""


def test_check_health_and_settings_from_the_zone_row(make_backend, tmp_path, catalog):
    zone = catalog["fra1-a"]
    zone.backend_settings = {"hosts": [host_xml(tmp_path, "kvm7", cpus=8, memory_mib=16384)]}
    zone.save()
    backend = make_backend()
    assert backend.check_health("fra1-a") == "1 host, 0 servers, 8 vCPUs and 16.0 GiB RAM free"


def test_missing_libvirt_skips_unless_services_are_required(monkeypatch):
    monkeypatch.setenv("REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_SERVICES=1"):
        libvirt_env.unavailable("no libvirt here")
    monkeypatch.delenv("REQUIRE_SERVICES")
    with pytest.raises(pytest.skip.Exception, match="no libvirt here"):
        libvirt_env.unavailable("no libvirt here")


# --- A real VM: the embedded QEMU driver, software emulation --------------------------------


@pytest.mark.django_db
def test_a_real_vm_boots_reboots_stops_starts_resizes_and_is_deleted(libvirt_backend, libvirt_root):
    backend, zone = libvirt_backend
    wanted = spec(zone, name="Web Shop 1")

    server = backend.create_server(wanted)
    assert server.state == B.RUNNING and server.idempotency_key == wanted.idempotency_key
    assert backend.create_server(wanted).backend_id == server.backend_id  # adopted, not a second one
    assert backend.find_server(zone, wanted.idempotency_key).backend_id == server.backend_id
    assert [s.backend_id for s in backend.list_servers(zone)] == [server.backend_id]

    wait_for(lambda: booted(backend, server.backend_id), what="the guest's boot marker")
    # The guest read its NoCloud seed: hostname and instance id.
    assert f"{MARKER} web-shop-1 {wanted.idempotency_key}" in backend.console_output(server.backend_id)

    backend.reboot_server(server.backend_id)  # soft: ACPI; once the guest is off, get_server starts it
    wait_for(lambda: booted(backend, server.backend_id, 2), what="a boot after the soft reboot")
    assert console_log(libvirt_root, server.backend_id).count(POWEROFF_MARKER) == 1  # a clean one

    backend.stop_server(server.backend_id)
    backend.stop_server(server.backend_id)  # repeating is a no-op
    wait_for(lambda: backend.get_server(server.backend_id).state == B.STOPPED, what="STOPPED")
    assert console_log(libvirt_root, server.backend_id).count(POWEROFF_MARKER) == 2  # a clean ACPI shutdown
    with pytest.raises(Rejected, match="stopped"):
        backend.reboot_server(server.backend_id)

    backend.start_server(server.backend_id)
    backend.start_server(server.backend_id)  # no-op
    assert backend.get_server(server.backend_id).state == B.RUNNING
    wait_for(lambda: booted(backend, server.backend_id, 3), what="a boot after start")
    with pytest.raises(Rejected, match="Stop the server"):
        backend.resize_server(server.backend_id, flavor="s-2vcpu-2gb", vcpus=2, ram_gib=2)

    backend.stop_server(server.backend_id)
    wait_for(lambda: backend.get_server(server.backend_id).state == B.STOPPED, what="STOPPED again")
    backend.resize_server(server.backend_id, flavor="s-2vcpu-2gb", vcpus=2, ram_gib=2)
    backend.resize_server(server.backend_id, flavor="s-2vcpu-2gb", vcpus=2, ram_gib=2)  # no-op
    resized = backend.get_server(server.backend_id)
    assert resized.state == B.STOPPED and resized.flavor == "s-2vcpu-2gb"
    (domain,) = [d for d in host_survey(backend, zone)["domains"] if d["meta"].get("zone") == zone]
    assert (domain["vcpus"], domain["memory_mib"]) == (2, 256)  # 2 GiB at 128 MiB per GiB

    server_dir = libvirt_root / "disks" / server.backend_id.rsplit("/", 1)[1]
    assert (server_dir / "root.qcow2").exists() and (server_dir / "seed.iso").exists()
    backend.delete_server(server.backend_id)
    assert not server_dir.exists()
    with pytest.raises(NotFound):
        backend.get_server(server.backend_id)
    backend.delete_server(server.backend_id)  # already gone: fine
    assert backend.find_server(zone, wanted.idempotency_key) is None
    assert backend.list_servers(zone) == []


@pytest.mark.django_db
def test_a_guest_that_ignores_the_power_button_is_switched_off_after_the_timeout(
    libvirt_root, libvirt_guest, libvirt_backend
):
    _, zone = libvirt_backend  # for its clean-up of the zone
    options = backend_options(
        libvirt_root, libvirt_guest, zone, cmdline="console=ttyS0 quiet portal-ignore-acpi"
    )
    backend = LibvirtBackend("libvirt-test", **options | {"stop_timeout_seconds": 2})
    server = backend.create_server(spec(zone))
    wait_for(lambda: booted(backend, server.backend_id), what="the guest's boot marker")

    backend.stop_server(server.backend_id)
    assert backend.get_server(server.backend_id).state == B.STOPPING  # asked, not waited for
    wait_for(lambda: backend.get_server(server.backend_id).state == B.STOPPED, timeout=10, what="forced stop")
    assert POWEROFF_MARKER not in console_log(libvirt_root, server.backend_id)  # it never shut down itself
    backend.delete_server(server.backend_id)


@pytest.mark.django_db
def test_calls_from_two_processes_at_once_take_turns_on_the_embedded_root(libvirt_backend):
    # Celery's prefork pool runs two worker processes: each call is a helper process that waits
    # for the root's lock instead of being refused by libvirt's own lock.
    backend, zone = libvirt_backend
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: backend.zone_capacity(zone), range(4)))
    assert len(answers) == 4 and all(answer.free_vcpus > 0 for answer in answers)


def host_survey(backend, zone: str) -> dict:
    config = backend._config(zone)
    return backend._host(config, config["hosts"][0], "survey")


def test_storage_is_declared_where_disks_are_files_and_a_retried_create_adopts(make_backend, tmp_path):
    from portal.compute.backends import Capability, VolumeCloudState, VolumeSpec

    storage = {
        Capability.VOLUMES,
        Capability.VOLUME_EXTEND,
        Capability.SERVER_SNAPSHOTS,
        Capability.VOLUME_SNAPSHOTS,
        Capability.IMAGE_COPY,
        Capability.SERVER_REBUILD,
    }
    backend = make_backend()
    # the guest agent's password reset too (libvirt_password)
    consoles = {Capability.SERIAL_CONSOLE, Capability.GRAPHICAL_CONSOLE, Capability.PASSWORD_RESET}
    assert backend.capabilities(UNIT_ZONE) == storage | {Capability.LARGE_ROOT_DISK} | consoles
    pool = make_backend(zone_settings={"storage_pool": "vms"})
    assert pool.capabilities(UNIT_ZONE) == {Capability.LARGE_ROOT_DISK} | consoles
    asked = VolumeSpec(str(uuid.uuid4()), "data", UNIT_ZONE, 1)
    with pytest.raises(Rejected, match=f"Volumes are not available in {UNIT_ZONE}"):
        pool.create_volume(asked)

    # A worker died after recording the volume, before making its disk: the retry makes that one.
    record = tmp_path / "disks" / "volumes" / asked.idempotency_key
    record.mkdir(parents=True)
    (record / "meta.json").write_text(
        json.dumps(
            {"idempotency-key": asked.idempotency_key, "name": "data", "zone": UNIT_ZONE, "size-gib": 1}
        )
    )
    assert (
        backend.get_volume(f"{UNIT_ZONE}/volume/{asked.idempotency_key}").state == VolumeCloudState.CREATING
    )
    made = backend.create_volume(asked)
    assert made.state == VolumeCloudState.AVAILABLE and made.backend_id.endswith(asked.idempotency_key)
    assert backend.create_volume(asked).backend_id == made.backend_id
    assert [path.name for path in (tmp_path / "disks" / "volumes").iterdir()] == [asked.idempotency_key]
    assert [v.backend_id for v in backend.list_volumes(UNIT_ZONE)] == [made.backend_id]
