"""The libvirt backend's storage, seen from inside a real guest (tests/backends/libvirt_env.py): a
volume hot plugged into a running VM appears in its /proc/partitions, grows there and goes away
again; a marker written to a server's disk comes back in a server launched from its snapshot, and
in the server itself when its disk is restored from the snapshot (what was written since is gone)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from portal.compute.backends import (
    BackendState,
    SnapshotCloudState,
    SnapshotSource,
    SnapshotSpec,
    VolumeCloudState,
)
from tests.backends import libvirt_env
from tests.backends.libvirt_env import wait_for
from tests.backends.test_libvirt import booted, spec
from tests.backends.test_storage_contract import until, volume_spec

libvirt_backend = libvirt_env.libvirt_backend

pytestmark = pytest.mark.django_db(transaction=True)

V, S = VolumeCloudState, SnapshotCloudState

# Prints the guest's block devices ("vda:1048576 vdb:366", name:KiB) whenever they change.
REPORT_DISKS = """#!/bin/sh
last=""
while true; do
    now=$(awk 'NR > 2 && $4 != "" {printf "%s:%s ", $4, $3}' /proc/partitions)
    if [ "$now" != "$last" ]; then echo "PORTAL-DISKS $now"; last="$now"; fi
    sleep 0.3
done
"""


def disks_seen(backend, server_id: str) -> dict[str, int]:
    """The guest's block devices (name: KiB) as it last reported them on its console."""
    reports = re.findall(r"PORTAL-DISKS ([^\r\n]*)", backend.console_output(server_id))
    if not reports:
        return {}
    return {name: int(kib) for name, kib in (item.split(":") for item in reports[-1].split())}


def test_a_volume_hot_plugged_into_a_running_guest_appears_grows_and_goes(libvirt_backend):
    backend, zone = libvirt_backend
    server = backend.create_server(spec(zone, name="disk watcher", user_data=REPORT_DISKS))
    volume = backend.create_volume(volume_spec(zone, size_gib=1))
    wait_for(lambda: booted(backend, server.backend_id), what="the guest's boot marker")
    wait_for(lambda: "vda" in disks_seen(backend, server.backend_id), what="the guest's disk report")
    assert "vdc" not in disks_seen(backend, server.backend_id)

    backend.attach_volume(volume.backend_id, server.backend_id)
    attached = until(lambda: backend.get_volume(volume.backend_id), {V.IN_USE})
    assert attached.device == "/dev/vdc" and attached.attached_to == server.backend_id
    wait_for(lambda: disks_seen(backend, server.backend_id).get("vdc") == 1024**2, what="vdc of 1 GiB")

    backend.extend_volume(volume.backend_id, 2)  # while the guest runs: it sees the new size
    assert until(lambda: backend.get_volume(volume.backend_id), {V.IN_USE}).size_gib == 2
    wait_for(lambda: disks_seen(backend, server.backend_id).get("vdc") == 2 * 1024**2, what="vdc of 2 GiB")

    backend.detach_volume(volume.backend_id, server.backend_id)
    assert until(lambda: backend.get_volume(volume.backend_id), {V.AVAILABLE}, timeout=60).attached_to == ""
    wait_for(lambda: "vdc" not in disks_seen(backend, server.backend_id), what="vdc gone from the guest")
    assert backend.get_server(server.backend_id).state == BackendState.RUNNING

    backend.delete_server(server.backend_id)
    backend.delete_volume(volume.backend_id)


def write_marker(marker: str) -> str:
    return (
        "#!/bin/sh\n"
        f"echo {marker} | dd of=/dev/vda bs=512 count=1 conv=sync,fsync 2>/dev/null\n"
        "sync\necho PORTAL-MARK-WRITTEN\n"
    )


READ_MARKER = (
    "#!/bin/sh\necho \"PORTAL-DISK-READ $(dd if=/dev/vda bs=512 count=1 2>/dev/null | tr -d '\\000')\"\n"
)


def first_sector(image: Path, scratch: Path) -> bytes:
    raw = scratch / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(image), str(raw)], check=True)
    with open(raw, "rb") as disk:
        return disk.read(512).rstrip(b"\0")


def test_a_marker_on_a_server_disk_comes_back_in_a_server_launched_from_its_snapshot(
    libvirt_backend, tmp_path
):
    backend, zone = libvirt_backend
    marker = f"PORTAL-DISK-MARK-{uuid.uuid4().hex[:12]}"
    source = backend.create_server(spec(zone, name="source", user_data=write_marker(marker)))
    wait_for(
        lambda: "PORTAL-MARK-WRITTEN" in backend.console_output(source.backend_id), what="the marker written"
    )

    # Running: QEMU mirrors the disk, and the copy is ended once in step; the guest runs on.
    taken = SnapshotSpec(str(uuid.uuid4()), "golden", zone, SnapshotSource.SERVER, source.backend_id)
    snapshot = until(lambda: backend.get_snapshot(backend.create_snapshot(taken).backend_id), {S.AVAILABLE})
    assert snapshot.image_ref and snapshot.min_disk_gib == 1
    assert backend.get_server(source.backend_id).state == BackendState.RUNNING

    clone = backend.create_server(
        dataclasses.replace(
            spec(zone, name="clone", user_data=READ_MARKER), image_backend_id=snapshot.image_ref
        )
    )
    wait_for(
        lambda: "PORTAL-DISK-READ" in backend.console_output(clone.backend_id),
        what="the clone reading its disk",
    )
    assert f"PORTAL-DISK-READ {marker}" in backend.console_output(clone.backend_id)

    # Stopped: qemu-img copies the disk in the background.
    backend.stop_server(source.backend_id)
    wait_for(lambda: backend.get_server(source.backend_id).state == BackendState.STOPPED, what="STOPPED")
    cold = SnapshotSpec(str(uuid.uuid4()), "cold", zone, SnapshotSource.SERVER, source.backend_id)
    cold_snapshot = until(
        lambda: backend.get_snapshot(backend.create_snapshot(cold).backend_id), {S.AVAILABLE}
    )
    assert first_sector(Path(cold_snapshot.metadata["path"]), tmp_path) == marker.encode() + b"\n"

    for server in (clone, source):
        backend.delete_server(server.backend_id)
    for taken_snapshot in (snapshot, cold_snapshot):
        backend.delete_snapshot(taken_snapshot.backend_id)


# At every boot: print the first sector of the disk, then write marker A over an empty one, or B
# over A (so B marks what was written after a snapshot of A).
MARK_EACH_BOOT = """#!/bin/sh
now=$(dd if=/dev/vda bs=512 count=1 2>/dev/null | tr -d '\\000')
echo "PORTAL-DISK-READ $now"
case "$now" in
    *MARK-A-*) next="MARK-B-{key}" ;;
    *) next="MARK-A-{key}" ;;
esac
echo "$next" | dd of=/dev/vda bs=512 count=1 conv=sync,fsync 2>/dev/null
sync
echo "PORTAL-MARK-WRITTEN $next"
"""


def _boots_after(backend, server_id: str, before: str) -> list[str]:
    """The disk reads printed since `before` (the console so far; all of it if the log began anew)."""
    output = backend.console_output(server_id)
    fresh = output[len(before) :] if output.startswith(before) else output
    return re.findall(r"PORTAL-DISK-READ ([^\r\n]*)", fresh)


def test_a_restored_disk_has_what_the_snapshot_had_and_not_what_came_after(libvirt_backend, tmp_path):
    backend, zone = libvirt_backend
    key = uuid.uuid4().hex[:8]
    server = backend.create_server(
        spec(zone, name="restored", user_data=MARK_EACH_BOOT.replace("{key}", key))
    )
    wait_for(lambda: f"WRITTEN MARK-A-{key}" in backend.console_output(server.backend_id), what="marker A")

    taken = SnapshotSpec(str(uuid.uuid4()), "with-a", zone, SnapshotSource.SERVER, server.backend_id)
    snapshot = until(lambda: backend.get_snapshot(backend.create_snapshot(taken).backend_id), {S.AVAILABLE})

    # Written after the snapshot: the next boot finds A and writes B.
    before = backend.console_output(server.backend_id)
    backend.reboot_server(server.backend_id, hard=True)
    wait_for(lambda: _boots_after(backend, server.backend_id, before), what="the reboot's disk read")
    assert _boots_after(backend, server.backend_id, before)[0] == f"MARK-A-{key}"
    wait_for(lambda: f"WRITTEN MARK-B-{key}" in backend.console_output(server.backend_id), what="marker B")
    wait_for(lambda: backend.get_server(server.backend_id).state == BackendState.RUNNING, what="RUNNING")

    # Restored while it runs: it starts again on the snapshot's disk, which has A and not B.
    before = backend.console_output(server.backend_id)
    rebuild_key = str(uuid.uuid4())
    backend.rebuild_server(server.backend_id, image_ref=snapshot.image_ref, rebuild_key=rebuild_key)
    wait_for(lambda: _boots_after(backend, server.backend_id, before), what="the restored disk's read")
    assert _boots_after(backend, server.backend_id, before)[0] == f"MARK-A-{key}"
    assert backend.get_server(server.backend_id).state == BackendState.RUNNING

    # Stopped, and restored again: it stays stopped, and its disk file holds A once more.
    wait_for(lambda: f"WRITTEN MARK-B-{key}" in backend.console_output(server.backend_id), what="B again")
    backend.stop_server(server.backend_id)
    wait_for(lambda: backend.get_server(server.backend_id).state == BackendState.STOPPED, what="STOPPED")
    backend.rebuild_server(server.backend_id, image_ref=snapshot.image_ref, rebuild_key=str(uuid.uuid4()))
    assert backend.get_server(server.backend_id).state == BackendState.STOPPED
    _config, _uri, _uuid, summary = backend._locate(server.backend_id)
    root = Path(summary["meta"]["directory"]) / "root.qcow2"
    assert first_sector(root, tmp_path) == f"MARK-A-{key}\n".encode()
    backend.delete_server(server.backend_id)
    backend.delete_snapshot(snapshot.backend_id)
