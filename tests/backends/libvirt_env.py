"""A real libvirt to test against: the embedded QEMU driver, a Debian cloud kernel and a busybox VM.

`libvirt_backend` yields `(backend, zone_code)`: a `LibvirtBackend` on `qemu:///embed?root=<tmp>`
(no libvirtd), software emulation (domain type "qemu"), 128 MiB guests that boot a Debian cloud
kernel straight into a ~1 MB busybox initramfs. The guest prints `PORTAL-VM-BOOTED <hostname>
<instance-id>` on its serial console once up (read from the NoCloud seed), powers off cleanly on
the ACPI power button, and otherwise idles.

The kernel comes from Debian's `linux-image-cloud-amd64` (downloaded with `apt-get download` and
unpacked with `dpkg-deb -x`, never installed); it and the initramfs are cached in
`var/test-cache/libvirt/` of the checkout so only the first run downloads. Without the Debian
packages (or libvirt-python) the tests skip, or fail when REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "var" / "test-cache" / "libvirt"
ZONE = "lv-test"
MARKER = "PORTAL-VM-BOOTED"
POWEROFF_MARKER = "PORTAL-VM-POWEROFF"
IMAGE_NAME = "Busybox Test"
# Not $TMPDIR: QEMU's monitor sockets live under the root, and socket paths end at 108 characters.
SHORT_TMP = Path("/tmp")  # noqa: S108

# What the VM needs besides the Python binding, as Debian packages and the files they bring.
DEBIAN_TOOLS = {
    "qemu-system-x86": "/usr/bin/qemu-system-x86_64",
    "libvirt-daemon-driver-qemu": "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so",
    "busybox-static": "/bin/busybox",
    "qemu-utils": "/usr/bin/qemu-img",
    "genisoimage": "/usr/bin/genisoimage",
}

# Kernel modules the guest loads, dependencies first: virtio disks (the NoCloud seed), ISO 9660,
# and the ACPI power button with its input device (for a clean shutdown).
GUEST_MODULES = (
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci",
    "drivers/block/virtio_blk",
    "drivers/cdrom/cdrom",
    "fs/isofs/isofs",
    "drivers/acpi/button",
    "drivers/input/evdev",
)

GUEST_INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in $(cat /etc/modules); do insmod "/lib/modules/$module.ko" 2>/dev/null; done
name=unnamed
instance=none
mkdir -p /seed
for disk in /dev/vd?; do
    if mount -t iso9660 -o ro "$disk" /seed 2>/dev/null; then
        if [ -f /seed/meta-data ]; then
            name=$(sed -n 's/^local-hostname: *//p' /seed/meta-data)
            instance=$(sed -n 's/^instance-id: *//p' /seed/meta-data)
            break
        fi
        umount /seed
    fi
done
hostname "$name"
case " $(cat /proc/cmdline) " in
    *" portal-ignore-acpi "*) ;;  # a guest that ignores the power button (tests the forced stop)
    *) acpid -c /etc/acpi -l /dev/null -p /run/acpid.pid ;;
esac
echo "PORTAL-VM-BOOTED $name $instance" > /dev/ttyS0
while true; do sleep 3600; done
"""

POWER_BUTTON_HANDLER = r"""#!/bin/sh
echo "PORTAL-VM-POWEROFF" > /dev/ttyS0
sync
poweroff -f
"""


class LibvirtUnavailable(Exception):
    pass


def unavailable(reason: str) -> None:
    """Skip, or fail when the CI asks for every service (REQUIRE_SERVICES=1)."""
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"libvirt test VM cannot run: {reason} (REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(f"libvirt test VM cannot run: {reason} (set REQUIRE_SERVICES=1 to make this a failure)")


def missing_tools() -> list[str]:
    return [package for package, path in DEBIAN_TOOLS.items() if not Path(path).exists()]


def _run(*command: str, cwd: Path | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise LibvirtUnavailable(
            f"{' '.join(command)} failed: {(result.stderr or result.stdout).strip()[-500:]}"
        )
    return result.stdout


def kernel_package() -> str:
    """The package the `linux-image-cloud-amd64` meta-package points at, e.g.
    `linux-image-6.1.0-56-cloud-amd64`."""
    shown = _run("apt-cache", "depends", "linux-image-cloud-amd64")
    found = re.findall(r"Depends:\s*(linux-image-[\w.+-]+-cloud-amd64)", shown)
    if not found:
        raise LibvirtUnavailable("apt-cache knows no linux-image-cloud-amd64 (run apt-get update)")
    return found[0]


@dataclass(frozen=True)
class GuestFiles:
    kernel: Path
    initrd: Path
    image: Path  # a blank qcow2 "image": the busybox guest runs from its initramfs


def _extracted_kernel() -> Path:
    """The unpacked kernel package (cached); returns its root directory."""
    for tree in sorted(CACHE.glob("linux-image-*/")):
        if list((tree / "boot").glob("vmlinuz-*")):
            return tree
    package = kernel_package()
    download = CACHE / "download"
    download.mkdir(parents=True, exist_ok=True)
    _run("apt-get", "download", package, cwd=download)
    debs = sorted(download.glob(f"{package}_*.deb"))
    if not debs:
        raise LibvirtUnavailable(f"apt-get download {package} left no .deb")
    partial = Path(tempfile.mkdtemp(prefix="unpack-", dir=CACHE))
    _run("dpkg-deb", "-x", str(debs[-1]), str(partial))
    _prune_kernel_tree(partial)
    tree = CACHE / package
    partial.rename(tree)
    shutil.rmtree(download, ignore_errors=True)
    return tree


def _cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A cpio "newc" archive of (name, mode, data); directories have mode 0o040755 and no data."""
    out = io.BytesIO()

    def pad(n: int) -> None:
        out.write(b"\0" * (-n % 4))

    for number, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        encoded = name.encode() + b"\0"
        fields = (number, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        out.write(header + encoded)
        pad(len(header) + len(encoded))
        out.write(data)
        pad(len(data))
    return out.getvalue()


def build_initramfs(kernel_tree: Path, target: Path) -> None:
    module_root = next((kernel_tree / "lib" / "modules").iterdir()) / "kernel"
    directory, executable, regular = 0o040755, 0o100755, 0o100644
    entries: list[tuple[str, int, bytes]] = [
        (name, directory, b"")
        for name in (
            "bin",
            "dev",
            "run",
            "etc",
            "etc/acpi",
            "etc/acpi/PWRF",
            "lib",
            "lib/modules",
            "proc",
            "sys",
            "seed",
        )
    ]
    entries += [
        ("bin/busybox", executable, Path("/bin/busybox").read_bytes()),
        ("init", executable, GUEST_INIT.encode()),
        ("etc/acpi/PWRF/00000080", executable, POWER_BUTTON_HANDLER.encode()),
    ]
    names = []
    for module in GUEST_MODULES:
        source = module_root / f"{module}.ko"
        if source.exists():  # some are built in on other kernels
            name = Path(module).name
            names.append(name)
            entries.append((f"lib/modules/{name}.ko", regular, source.read_bytes()))
    entries.append(("etc/modules", regular, "\n".join(names).encode() + b"\n"))
    partial = target.with_suffix(".partial")
    partial.write_bytes(gzip.compress(_cpio_newc(entries), compresslevel=6, mtime=0))
    partial.rename(target)


def guest_files() -> GuestFiles:
    """Kernel, initramfs and blank image, built once and kept in var/test-cache/libvirt/."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once build it once
        return _guest_files()


def _guest_files() -> GuestFiles:
    tree = _extracted_kernel()
    kernel = next((tree / "boot").glob("vmlinuz-*"))
    recipe = hashlib.sha256(
        (GUEST_INIT + POWER_BUTTON_HANDLER + "".join(GUEST_MODULES)).encode()
        + Path("/bin/busybox").read_bytes()
        + kernel.name.encode()
    ).hexdigest()[:12]
    initrd = CACHE / f"initramfs-{recipe}.cpio.gz"
    if not initrd.exists():
        for stale in CACHE.glob("initramfs-*.cpio.gz"):
            stale.unlink()
        build_initramfs(tree, initrd)
    image = CACHE / "blank-1g.qcow2"
    if not image.exists():
        _run("qemu-img", "create", "-q", "-f", "qcow2", str(image.with_suffix(".partial")), "1G")
        image.with_suffix(".partial").rename(image)
    return GuestFiles(kernel=kernel, initrd=initrd, image=image)


def _prune_kernel_tree(tree: Path) -> None:
    """Keep the kernel and the few modules the guest loads (the package unpacks to ~100 MB)."""
    module_root = next((tree / "lib" / "modules").iterdir()) / "kernel"
    keep = {module_root / f"{module}.ko" for module in GUEST_MODULES}
    for path in sorted(module_root.rglob("*.ko*")):
        if path not in keep:
            path.unlink()
    for directory in sorted(tree.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
    shutil.rmtree(tree / "usr", ignore_errors=True)


def embed_user() -> str | None:
    """As root, the embedded driver either runs QEMU as root (needs a `libvirt-qemu` account to
    exist, as Debian's libvirt-daemon-system creates) or runs as another user entirely."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("libvirt-qemu")
    except KeyError:
        return "nobody"
    return None


_guest: GuestFiles | None = None
_root: Path | None = None


def session_guest() -> GuestFiles:
    """The guest's kernel, initramfs and image; skips (or fails under REQUIRE_SERVICES=1) when
    libvirt or the Debian packages are missing."""
    global _guest
    if _guest is None:
        try:
            import libvirt  # noqa: F401
        except ImportError:
            unavailable("libvirt-python is not installed (pip install -e '.[libvirt]', needs libvirt-dev)")
        missing = missing_tools()
        if missing:
            unavailable(f"Debian packages missing: {' '.join(missing)}")
        try:
            _guest = guest_files()
        except LibvirtUnavailable as error:
            unavailable(str(error))
    return _guest


def sweep_root(root: Path) -> None:
    """Switch off every VM under an embedded root and remove it. VMs outlive the process that
    started them, so a test run that was killed leaves them behind."""
    from portal.compute.backends.libvirt import LibvirtBackend

    sweeper, uri, config = (
        LibvirtBackend("libvirt-sweep"),
        f"qemu:///embed?root={root}",
        {"embed_user": embed_user()},
    )
    try:
        for domain in sweeper._in_helper(config, uri, "survey", {})["domains"]:
            sweeper._in_helper(config, uri, "delete", {"domain_uuid": domain["uuid"], "volumes": []})
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _owner_alive(root: Path) -> bool:
    try:
        os.kill(int((root / "owner.pid").read_text()), 0)  # signal 0: only asks whether it exists
    except (OSError, ValueError):
        return False
    return True


def session_root(request) -> Path:
    """One embedded-driver root for the test session (the first open of a root probes QEMU,
    ~1.5 s), swept when the session ends. Roots of killed runs are swept first."""
    global _root
    if _root is None:
        session_guest()
        for stale in SHORT_TMP.glob("portal-lv-*"):
            if (stale / "owner.pid").exists() and not _owner_alive(stale):
                sweep_root(stale)
        _root = Path(tempfile.mkdtemp(prefix="portal-lv-", dir=SHORT_TMP))
        (_root / "owner.pid").write_text(str(os.getpid()))
        request.session.addfinalizer(_end_session)
    return _root


def _end_session() -> None:
    # Whatever a failed test left running. By host rather than by zone: zone settings are read
    # from the database, gone by now.
    global _root
    root, _root = _root, None
    if root is not None:
        sweep_root(root)


@pytest.fixture
def libvirt_guest() -> GuestFiles:
    return session_guest()


@pytest.fixture
def libvirt_root(request) -> Path:
    return session_root(request)


def backend_options(root: Path, guest: GuestFiles, zone: str, **zone_settings) -> dict:
    """OPTIONS for a LibvirtBackend on the embedded driver, with one zone (no Zone row needed)."""
    # Whatever image a test asks for, the busybox guest boots: it runs from its initramfs.
    images = dict.fromkeys(
        (IMAGE_NAME, "debian-12", "Debian 12", "Debian 13", "Ubuntu 24.04"), guest.image.name
    )
    return {
        "domain_type": "qemu",
        "machine": "q35",
        "kernel": str(guest.kernel),
        "initrd": str(guest.initrd),
        "cmdline": "console=ttyS0 panic=-1 quiet",
        "image_store": str(guest.image.parent),
        "images": images,
        "ram_mib_per_gib": 128,  # a 1 GiB flavor gets 128 MiB: the busybox guest needs ~60
        "max_ram_mib": 256,
        "cpu_allocation_ratio": 4.0,  # two-core CI machines still take a 2-vCPU resize
        "stop_timeout_seconds": 15,
        "embed_user": embed_user(),
        "zones": {zone: {"hosts": [f"qemu:///embed?root={root}"], "network": "none", **zone_settings}},
    }


_zones = iter(range(1, 10_000))


@pytest.fixture
def libvirt_backend(db, request):
    """(backend, zone_code): a LibvirtBackend whose servers boot the busybox guest to RUNNING.

    Each test gets a zone of its own on the session's embedded root; servers left in it are
    deleted afterwards. Importing this one fixture is enough (it needs no other of this module)."""
    from portal.compute.backends.libvirt import LibvirtBackend

    zone = f"{ZONE}-{next(_zones)}"
    backend = LibvirtBackend("libvirt-test", **backend_options(session_root(request), session_guest(), zone))
    yield backend, zone
    for server in backend.list_servers(zone):
        backend.delete_server(server.backend_id)


def wait_for(predicate, timeout: float = 30, every: float = 0.3, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
