"""A real libvirt to test against: the embedded QEMU driver, a Debian cloud kernel and a busybox VM.

`libvirt_backend` yields `(backend, zone_code)`: a `LibvirtBackend` on `qemu:///embed?root=<tmp>`
(no libvirtd), software emulation (domain type "qemu"), 128 MiB guests that boot a Debian cloud
kernel straight into a ~1 MB busybox initramfs. The guest prints `PORTAL-VM-BOOTED <hostname>
<instance-id>` on its serial console once up (read from the NoCloud seed), powers off cleanly on
the ACPI power button, and otherwise idles.

The guest is built by `portal.compute.backends.libvirt_guest` (the `libvirt_dev_zone` command boots
the same one in `make run`): the kernel comes from Debian's `linux-image-cloud-amd64` (downloaded
with `apt-get download` and unpacked with `dpkg-deb -x`, never installed); it and the initramfs are
cached in `var/test-cache/libvirt/` of the checkout so only the first run downloads. Without the Debian
packages (or libvirt-python) the tests skip, or fail when REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from portal.compute.backends import libvirt_guest as guest
from portal.compute.backends.libvirt_guest import (
    MARKER,
    POWEROFF_MARKER,
    GuestFiles,
    GuestUnavailable,
    embed_user,
)

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "var" / "test-cache" / "libvirt"
ZONE = "lv-test"
IMAGE_NAME = "Busybox Test"
# Not $TMPDIR: QEMU's monitor sockets live under the root, and socket paths end at 108 characters.
SHORT_TMP = Path("/tmp")  # noqa: S108

__all__ = ["MARKER", "POWEROFF_MARKER", "GuestFiles", "embed_user"]  # for the test modules

LibvirtUnavailable = GuestUnavailable


def unavailable(reason: str) -> None:
    """Skip, or fail when the CI asks for every service (REQUIRE_SERVICES=1)."""
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"libvirt test VM cannot run: {reason} (REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(f"libvirt test VM cannot run: {reason} (set REQUIRE_SERVICES=1 to make this a failure)")


def missing_tools() -> list[str]:
    """Debian packages missing for the VM (the Python binding is checked on its own)."""
    build = set(guest.BINDING_BUILD_PACKAGES)
    return [package for package in guest.missing_packages() if package not in build]


def guest_files() -> GuestFiles:
    """Kernel, initramfs and blank image, built once and kept in var/test-cache/libvirt/.

    QEMU runs as the embed user (e.g. nobody) when the tests run as root: if that user can't
    reach the checkout (a clone in a private directory), the files are copied to /tmp, in the
    cache's own layout, so that the copy serves as a cache too (`guest_cache`)."""
    files = guest.guest_files(CACHE)
    paths = (files.kernel, files.initrd, files.image, files.rescue_initrd)
    if not embed_user() or all(_others_can_read(path) for path in paths):
        return files
    shared = SHORT_TMP / f"portal-lv-guest-{os.getuid()}"
    shared.mkdir(exist_ok=True)
    copies = []
    # Both test passes run at once (.ci/test-passes): one may boot from a copy while the other
    # makes it, so a copy is written beside it and renamed over it (a QEMU that has the old file
    # open keeps reading it), and a copy already there whole is left alone.
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for path in paths:
            copy = shared / path.relative_to(CACHE)
            copy.parent.mkdir(parents=True, exist_ok=True)
            for directory in (copy.parent, *copy.parent.parents):
                if directory == SHORT_TMP:
                    break
                directory.chmod(0o755)  # enterable by QEMU's user, whatever the umask
            if not copy.exists() or copy.stat().st_size != path.stat().st_size:
                partial = copy.with_name(copy.name + ".partial")
                shutil.copyfile(path, partial)
                partial.chmod(0o644)
                partial.replace(copy)
            copies.append(copy)
    return GuestFiles(*copies)


def guest_cache() -> Path:
    """The directory the guest's files are in, as a cache QEMU's user can read (for
    `manage.py libvirt_dev_zone --cache-dir`)."""
    return session_guest().image.parent


def _others_can_read(path: Path) -> bool:
    """Readable by any user: the file is o+r and every directory above it o+x."""
    if not path.stat().st_mode & 0o004:
        return False
    return all(parent.stat().st_mode & 0o001 for parent in path.resolve().parents)


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
    from portal.compute.backends.libvirt_connection import run_in_helper

    uri, run_as = f"qemu:///embed?root={root}", embed_user()
    try:
        for domain in run_in_helper(uri, "survey", {}, run_as=run_as)["domains"]:
            run_in_helper(uri, "delete", {"domain_uuid": domain["uuid"], "volumes": []}, run_as=run_as)
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
        "rescue_kernel": str(guest.kernel),  # rescue mode: the same kernel, the rescue initramfs
        "rescue_initrd": str(guest.rescue_initrd),
        "cmdline": "console=ttyS0 panic=-1 quiet",
        "image_store": str(guest.image.parent),
        "snapshot_store": str(root / "snapshots"),  # not beside the shared cache's image
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
