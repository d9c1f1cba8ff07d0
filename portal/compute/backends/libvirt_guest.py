"""A tiny guest for trying the libvirt backend without a real image: a Debian cloud kernel and a
~1 MB busybox initramfs (docs/backends/libvirt.md, "Development zone").

The kernel comes from Debian's `linux-image-cloud-amd64` (downloaded with `apt-get download` and
unpacked with `dpkg-deb -x`, never installed), pruned to the few modules the guest loads. The
initramfs's `/init` reads the NoCloud seed the backend attaches, prints
`PORTAL-VM-BOOTED <hostname> <instance-id>` on the serial console, runs user data that is a shell
script (its output on the console too), powers off on the ACPI power button and runs a root shell
on the serial line (the portal's serial console). The root disk is a blank qcow2: the guest runs
from its initramfs.

Everything is built once into a cache directory (`guest_files(cache)`); the
`libvirt_dev_zone` command uses `var/libvirt/guest/`, the test suite `var/test-cache/libvirt/`.
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
from dataclasses import dataclass
from pathlib import Path

MARKER = "PORTAL-VM-BOOTED"
RESCUE_MARKER = "PORTAL-RESCUE-BOOTED"  # what the rescue initramfs prints instead
POWEROFF_MARKER = "PORTAL-VM-POWEROFF"
BUSYBOX = Path("/bin/busybox")

# What the guest needs on this machine, as Debian packages and a file each brings.
DEBIAN_TOOLS = {
    "qemu-system-x86": "/usr/bin/qemu-system-x86_64",
    "libvirt-daemon-driver-qemu": "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so",
    "busybox-static": str(BUSYBOX),
    "qemu-utils": "/usr/bin/qemu-img",
}
# The seed ISO is made with either.
ISO_TOOLS = {"genisoimage": "/usr/bin/genisoimage", "xorriso": "/usr/bin/xorriso"}
# libvirt-python builds against these.
BINDING_BUILD_PACKAGES = ("libvirt-dev", "pkg-config")

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
    "drivers/char/virtio_console",  # the QEMU guest agent's virtio-serial port
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
# root has no password until the guest agent sets one (virDomainSetUserPassword); from then on the
# serial line asks for it (login), as a real image's getty does.
echo 'root:x:0:0:root:/:/bin/sh' > /etc/passwd
echo 'root::20000:0:99999:7:::' > /etc/shadow
echo 'root:x:0:' > /etc/group
chmod 600 /etc/shadow
portal-guest-agent > /dev/null 2>&1 &
case " $(cat /proc/cmdline) " in
    *" portal-ignore-acpi "*) ;;  # a guest that ignores the power button (tests the forced stop)
    *) acpid -c /etc/acpi -l /dev/null -p /run/acpid.pid ;;
esac
if [ -f /etc/portal-rescue ]; then
    # The rescue initramfs (rescue mode): the seed is vda, the server's own disk vdb.
    echo "PORTAL-RESCUE-BOOTED $name disks: $(echo /dev/vd?)" > /dev/ttyS0
else
    echo "PORTAL-VM-BOOTED $name $instance" > /dev/ttyS0
fi
# User data that is a shell script (a MIME part, as the backend sends it; plain ASCII) runs in the
# background, printing to the serial console.
if [ -f /seed/user-data ]; then
    awk '/^Content-Type: text\/x-shellscript/ {part = 1; next}
         part == 1 && /^$/ {part = 2; next}
         part == 2 && /^--=+/ {exit}
         part == 2 {print}' /seed/user-data > /run/user-script
    if [ -s /run/user-script ]; then sh /run/user-script > /dev/ttyS0 2>&1 & fi
fi
# A root shell on the serial line, for the portal's serial console (started again after `exit`);
# once root has a password, the login prompt instead.
export PS1='$(hostname):$PWD# '
while true; do
    if grep -q '^root::' /etc/shadow; then
        setsid cttyhack sh -l < /dev/ttyS0 > /dev/ttyS0 2>&1
    else
        setsid cttyhack login < /dev/ttyS0 > /dev/ttyS0 2>&1
    fi
    sleep 1
done
"""

# A minimal QEMU guest agent (the protocol qemu-ga speaks, docs/interop/qemu-ga-ref): one JSON
# command a line on the virtio-serial port libvirt's channel `org.qemu.guest_agent.0` makes, one
# answer a line. It does what libvirt asks for virDomainSetUserPassword: `guest-sync` first (the id
# echoed back), then `guest-set-user-password` (base64, as qemu-ga takes it), which it writes to
# /etc/shadow as a SHA-512 crypt hash. Opening the port is what libvirt sees as "connected".
GUEST_AGENT = r"""#!/bin/sh
AGENT=org.qemu.guest_agent.0
field() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",}]*\).*/\1/p"; }
answer() { printf '%s\n' "$1" >&3; }
set_password() {
    user=$(echo "$1" | field username)
    secret=$(echo "$1" | field password | base64 -d)
    if ! grep -q "^$user:" /etc/shadow || [ -z "$secret" ]; then
        answer '{"error": {"class": "GenericError", "desc": "no such user or empty password"}}'
        return
    fi
    if [ "$(echo "$1" | field crypted)" = true ]; then hash=$secret; else hash=$(mkpasswd -m sha512 "$secret"); fi
    sed -i "s|^$user:[^:]*:|$user:$hash:|" /etc/shadow
    answer '{"return": {}}'
}
handle() {
    case $(echo "$1" | field execute) in
        guest-sync) answer "{\"return\": $(echo "$1" | field id)}" ;;
        guest-sync-delimited) printf '\377' >&3; answer "{\"return\": $(echo "$1" | field id)}" ;;
        guest-ping) answer '{"return": {}}' ;;
        guest-info) answer '{"return": {"version": "portal-busybox-1", "supported_commands": [{"name": "guest-sync", "enabled": true, "success-response": true}, {"name": "guest-ping", "enabled": true, "success-response": true}, {"name": "guest-set-user-password", "enabled": true, "success-response": true}]}}' ;;
        guest-set-user-password) set_password "$1" ;;
        *) answer '{"error": {"class": "CommandNotFound", "desc": "not supported by this agent"}}' ;;
    esac
}
while true; do
    for dir in /sys/class/virtio-ports/*; do
        [ "$(cat "$dir/name" 2>/dev/null)" = "$AGENT" ] && port=/dev/${dir##*/}
    done
    [ -n "$port" ] && [ -c "$port" ] && break
    sleep 1
done
exec 3<> "$port"
# While no one listens on the host side a read ends at once (end of file): wait, keep the port open.
while true; do
    if IFS= read -r line <&3; then
        handle "$(printf '%s' "$line" | tr -d '\377')"
    else
        usleep 200000
    fi
done
"""

POWER_BUTTON_HANDLER = r"""#!/bin/sh
echo "PORTAL-VM-POWEROFF" > /dev/ttyS0
sync
poweroff -f
"""


class GuestUnavailable(Exception):
    """The guest can't be built here; the message says why and what to do."""


@dataclass(frozen=True)
class GuestFiles:
    kernel: Path
    initrd: Path
    image: Path  # a blank qcow2 "image": the busybox guest runs from its initramfs
    rescue_initrd: Path  # the same initramfs marked as the rescue system (rescue mode)


def binding_missing() -> bool:
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return True
    return False


def missing_packages() -> list[str]:
    """Debian packages to install before the guest can boot here (empty: nothing missing)."""
    missing = [package for package, path in DEBIAN_TOOLS.items() if not Path(path).exists()]
    if "busybox-static" not in missing and _dynamically_linked(BUSYBOX):
        missing.append("busybox-static")  # Debian's plain busybox needs a loader the initramfs lacks
    if not any(Path(path).exists() for path in ISO_TOOLS.values()):
        missing.append("genisoimage")
    if binding_missing():
        missing += BINDING_BUILD_PACKAGES
    return missing


def _dynamically_linked(path: Path) -> bool:
    """An ELF executable with an interpreter (PT_INTERP) header: it needs the dynamic loader."""
    try:
        with open(path, "rb") as executable:
            header = executable.read(64)
            if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:  # 64-bit little-endian only
                return False
            table_offset = int.from_bytes(header[32:40], "little")
            entry_size = int.from_bytes(header[54:56], "little")
            entries = int.from_bytes(header[56:58], "little")
            executable.seek(table_offset)
            table = executable.read(entry_size * entries)
    except OSError:
        return False
    pt_interp = 3
    return any(
        int.from_bytes(table[n * entry_size : n * entry_size + 4], "little") == pt_interp
        for n in range(entries)
    )


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


def _run(*command: str, cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as error:
        raise GuestUnavailable(f"{command[0]}: {error}") from None
    if result.returncode != 0:
        raise GuestUnavailable(
            f"{' '.join(command)} failed: {(result.stderr or result.stdout).strip()[-500:]}"
        )
    return result.stdout


def kernel_package() -> str:
    """The package the `linux-image-cloud-amd64` meta-package points at, e.g.
    `linux-image-6.1.0-56-cloud-amd64`."""
    shown = _run("apt-cache", "depends", "linux-image-cloud-amd64")
    found = re.findall(r"Depends:\s*(linux-image-[\w.+-]+-cloud-amd64)", shown)
    if not found:
        raise GuestUnavailable("apt-cache knows no linux-image-cloud-amd64 (run apt-get update)")
    return found[0]


def guest_files(cache: Path) -> GuestFiles:
    """Kernel, initramfs and blank image, built once into `cache` (only the first call downloads)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two callers at once build it once
        return _guest_files(cache)


def _guest_files(cache: Path) -> GuestFiles:
    tree = _extracted_kernel(cache)
    kernel = next((tree / "boot").glob("vmlinuz-*"))
    recipe = hashlib.sha256(
        (GUEST_INIT + POWER_BUTTON_HANDLER + GUEST_AGENT + "".join(GUEST_MODULES)).encode()
        + BUSYBOX.read_bytes()
        + kernel.name.encode()
    ).hexdigest()[:12]
    initrd = cache / f"initramfs-{recipe}.cpio.gz"
    rescue_initrd = cache / f"rescue-initramfs-{recipe}.cpio.gz"
    for target, rescue in ((initrd, False), (rescue_initrd, True)):
        if not target.exists():
            for stale in cache.glob(target.name.replace(recipe, "*")):
                stale.unlink()
            build_initramfs(tree, target, rescue=rescue)
    image = cache / "blank-1g.qcow2"
    if not image.exists():
        _run("qemu-img", "create", "-q", "-f", "qcow2", str(image.with_suffix(".partial")), "1G")
        image.with_suffix(".partial").rename(image)
    return GuestFiles(kernel=kernel, initrd=initrd, image=image, rescue_initrd=rescue_initrd)


def _extracted_kernel(cache: Path) -> Path:
    """The unpacked kernel package (cached); returns its root directory."""
    wanted = "\n".join(GUEST_MODULES)
    for tree in sorted(cache.glob("linux-image-*/")):
        stamp = tree / ".portal-modules"  # pruned for this list of modules (a new one: unpack again)
        if list((tree / "boot").glob("vmlinuz-*")) and stamp.exists() and stamp.read_text() == wanted:
            return tree
        shutil.rmtree(tree, ignore_errors=True)
    package = kernel_package()
    download = cache / "download"
    download.mkdir(parents=True, exist_ok=True)
    _run("apt-get", "download", package, cwd=download)
    debs = sorted(download.glob(f"{package}_*.deb"))
    if not debs:
        raise GuestUnavailable(f"apt-get download {package} left no .deb")
    partial = Path(tempfile.mkdtemp(prefix="unpack-", dir=cache))
    _run("dpkg-deb", "-x", str(debs[-1]), str(partial))
    _prune_kernel_tree(partial)
    (partial / ".portal-modules").write_text(wanted)
    partial.chmod(0o755)  # mkdtemp makes it private; QEMU may run as another user
    tree = cache / package
    partial.rename(tree)
    shutil.rmtree(download, ignore_errors=True)
    return tree


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


def build_initramfs(kernel_tree: Path, target: Path, *, rescue: bool = False) -> None:
    """The guest's initramfs; `rescue` marks it as the rescue system (its /init says so)."""
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
        ("bin/busybox", executable, BUSYBOX.read_bytes()),
        ("init", executable, GUEST_INIT.encode()),
        ("bin/portal-guest-agent", executable, GUEST_AGENT.encode()),
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
    if rescue:
        entries.append(("etc/portal-rescue", regular, b""))
    partial = target.with_suffix(".partial")
    partial.write_bytes(gzip.compress(_cpio_newc(entries), compresslevel=6, mtime=0))
    partial.rename(target)
