"""What the libvirt backend asks a host for, as text: the domain definition, the storage-pool
volumes and the cloud-init NoCloud seed (an ISO). Pure functions of the server's spec and the
zone's settings, so tests read what we would ask for without libvirt (docs/backends/libvirt.md).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

from portal.compute.backends.base import ServerSpec, Transient
from portal.compute.backends.libvirt_host import METADATA_NS, METADATA_PREFIX

GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"  # the name qemu-ga looks for


def hostname_for(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return cleaned or "server"


def seed_files(spec: ServerSpec) -> dict[str, str]:
    """cloud-init NoCloud: meta-data names the instance, user-data carries the SSH keys and the
    customer's own user data (a MIME multipart when there is some, so any format works)."""
    meta_data = f"instance-id: {spec.idempotency_key}\nlocal-hostname: {hostname_for(spec.name)}\n"
    keys = f"#cloud-config\nssh_authorized_keys: {json.dumps(list(spec.ssh_keys))}\n"
    if not spec.user_data.strip():
        return {"meta-data": meta_data, "user-data": keys}
    message = MIMEMultipart()
    message.attach(MIMEText(keys, "cloud-config"))
    user_data = spec.user_data
    if user_data.startswith("#cloud-config"):
        kind = "cloud-config"
    elif user_data.startswith("#!"):
        kind = "x-shellscript"
    elif user_data.startswith("#include"):
        kind = "x-include-url"
    else:
        kind = "x-shellscript"  # what a bare script most likely is; cloud-init ignores what it can't run
        user_data = "#!/bin/sh\n" + user_data
    message.attach(MIMEText(user_data, kind))
    return {"meta-data": meta_data, "user-data": message.as_string()}


def build_seed_iso(files: dict[str, str]) -> bytes:
    """An ISO 9660 volume labelled `cidata`, made with genisoimage or xorriso."""
    with tempfile.TemporaryDirectory(prefix="portal-seed-") as scratch:
        directory = Path(scratch)
        for name, text in files.items():
            (directory / name).write_text(text)
        target = directory / "seed.iso"
        args = ["-quiet", "-output", str(target), "-volid", "cidata", "-joliet", "-rock", *files]
        if shutil.which("genisoimage"):
            command = ["genisoimage", *args]
        elif shutil.which("xorriso"):
            command = ["xorriso", "-as", "genisoimage", *args]
        else:
            raise Transient(
                "The cloud can't prepare new servers right now.",
                "neither genisoimage nor xorriso is installed on the portal's workers",
            )
        run_tool(command, cwd=directory)
        return target.read_bytes()


def run_tool(command: list[str], cwd: Path | None = None) -> str:
    """Run a tool on the portal's worker (qemu-img, genisoimage); any failure is transient."""
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as error:
        raise Transient("The cloud can't prepare new servers right now.", f"{command[0]}: {error}") from None
    if result.returncode != 0:
        raise Transient(
            "The cloud can't prepare new servers right now.",
            f"{' '.join(command)} exited {result.returncode}: {(result.stderr or result.stdout).strip()[-800:]}",
        )
    return result.stdout


def create_overlay(base: Path, target: str | Path, size: int, base_format: str = "qcow2") -> None:
    """A new qcow2 disk of `size` bytes at `target` that reads `base` until written to."""
    backing = ["-b", str(base.resolve()), "-F", base_format]
    run_tool(["qemu-img", "create", "-q", "-f", "qcow2", *backing, str(target), str(size)])


@dataclass(frozen=True)
class Disks:
    root: str
    seed: str
    console_log: str
    volumes: tuple[str, ...] = ()  # storage-pool volumes to delete with the server
    directory: str = ""  # a directory of the portal's own to remove with the server


def domain_xml(
    *,
    spec: ServerSpec,
    domain_uuid: str,
    config: dict,
    disks: Disks,
    memory_mib: int,
    root_format: str = "qcow2",
    agent_socket: str = "",
) -> str:
    """The domain definition (a pure function, so tests can read what we would ask for).
    `agent_socket`: the guest agent's socket on the host; empty, libvirt picks it."""
    domain = ET.Element("domain", type=config["domain_type"])
    ET.SubElement(domain, "name").text = f"portal-{domain_uuid}"
    ET.SubElement(domain, "uuid").text = domain_uuid
    ET.SubElement(domain, "title").text = spec.name.replace("\n", " ")[:200]
    metadata = ET.SubElement(domain, "metadata")
    server = ET.SubElement(metadata, f"{{{METADATA_NS}}}server")
    facts = {
        "instance-id": spec.idempotency_key,
        "zone": spec.zone,
        "name": spec.name,
        "flavor": spec.flavor,
        "image": spec.image,
        "image-ref": spec.image_backend_id,  # a snapshot it boots from (its root disk sits on it)
        "root-disk": disks.root,
        "seed": disks.seed,
        "console-log": disks.console_log,
        "directory": disks.directory,
        "volumes": "\n".join(disks.volumes),
    }
    for key, value in facts.items():
        ET.SubElement(server, f"{{{METADATA_NS}}}{key}").text = value
    ET.SubElement(domain, "memory", unit="MiB").text = str(memory_mib)
    ET.SubElement(domain, "vcpu").text = str(spec.vcpus)
    os_element = ET.SubElement(domain, "os")
    os_type = ET.SubElement(os_element, "type", arch=config.get("arch", "x86_64"))
    if config["machine"]:
        os_type.set("machine", config["machine"])
    os_type.text = "hvm"
    if config.get("kernel"):
        ET.SubElement(os_element, "kernel").text = config["kernel"]
        if config.get("initrd"):
            ET.SubElement(os_element, "initrd").text = config["initrd"]
        ET.SubElement(os_element, "cmdline").text = config["cmdline"]
    else:
        ET.SubElement(os_element, "boot", dev="hd")
    features = ET.SubElement(domain, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    if config["domain_type"] == "kvm":
        ET.SubElement(domain, "cpu", mode=config.get("cpu_mode", "host-passthrough"))
    ET.SubElement(domain, "clock", offset="utc")
    for event, action in (("on_poweroff", "destroy"), ("on_reboot", "restart"), ("on_crash", "destroy")):
        ET.SubElement(domain, event).text = action
    devices = ET.SubElement(domain, "devices")
    for path, target, driver_type, read_only in (
        (disks.root, "vda", root_format, False),
        (disks.seed, "vdb", "raw", True),
    ):
        disk = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type=driver_type)
        ET.SubElement(disk, "source", file=path)
        ET.SubElement(disk, "target", dev=target, bus="virtio")
        if read_only:
            ET.SubElement(disk, "readonly")
    network = config.get("network") or "user"
    interface = None
    if config.get("bridge"):
        interface = ET.SubElement(devices, "interface", type="bridge")
        ET.SubElement(interface, "source", bridge=config["bridge"])
    elif network == "user":  # outbound only, through QEMU: works anywhere, reachable from nowhere
        interface = ET.SubElement(devices, "interface", type="user")
    elif network != "none":
        interface = ET.SubElement(devices, "interface", type="network")
        ET.SubElement(interface, "source", network=network)
    if interface is not None:
        ET.SubElement(interface, "model", type="virtio")
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "log", file=disks.console_log, append="on")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    # The QEMU guest agent's port (virtio-serial); libvirt picks the host socket's path. An image
    # that runs an agent answers on it (password reset, libvirt_password.py); others leave it shut.
    channel = ET.SubElement(devices, "channel", type="unix")
    if agent_socket:
        ET.SubElement(channel, "source", mode="bind", path=agent_socket)
    ET.SubElement(channel, "target", type="virtio", name=GUEST_AGENT_CHANNEL)
    if config.get("graphical_console", True):
        # A VNC display on the host's loopback only, on a port libvirt picks: the portal reaches it
        # through the backend (libvirt_display.py) and relays it to the customer's noVNC.
        graphics = ET.SubElement(
            devices, "graphics", type="vnc", port="-1", autoport="yes", listen="127.0.0.1"
        )
        ET.SubElement(graphics, "listen", type="address", address="127.0.0.1")
        x86 = config.get("arch", "x86_64") in ("x86_64", "i686")
        video = ET.SubElement(devices, "video")
        ET.SubElement(video, "model", type=config.get("video_model") or ("vga" if x86 else "virtio"))
    ET.SubElement(devices, "controller", type="usb", model="none")
    if "q35" in config.get("machine", ""):
        # PCI Express has no hot plug on the root bus: empty root ports for volumes attached later.
        ET.SubElement(devices, "controller", type="pci", index="0", model="pcie-root")
        for _ in range(int(config.get("hotplug_ports", 4))):
            ET.SubElement(devices, "controller", type="pci", model="pcie-root-port")
    ET.SubElement(devices, "memballoon", model="none")
    ET.register_namespace(METADATA_PREFIX, METADATA_NS)
    return ET.tostring(domain, encoding="unicode")


def root_volume_xml(name: str, gib: int, image: str, image_format: str) -> str:
    """A storage-pool volume for the root disk: a qcow2 overlay on the image (libvirt runs qemu-img on the host)."""
    return (
        f"<volume><name>{name}</name>"
        f"<capacity unit='G'>{gib}</capacity>"
        "<target><format type='qcow2'/></target>"
        f"<backingStore><path>{_xml_text(image)}</path><format type='{image_format}'/></backingStore></volume>"
    )


def seed_volume_xml(name: str, size: int) -> str:
    """A storage-pool volume the seed ISO is uploaded into."""
    return (
        f"<volume><name>{name}</name><capacity unit='bytes'>{size}</capacity>"
        "<target><format type='raw'/></target></volume>"
    )


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")
