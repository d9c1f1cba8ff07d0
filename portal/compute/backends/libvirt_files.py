"""The files behind the libvirt backend's volumes and snapshots (libvirt_storage.py): a record's
directory, its exclusive `meta.json`, and the copies that fill a disk without waiting in a call
(`qemu-img convert` in a background process, or QEMU's block mirror of a running guest's disk).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from portal.compute.backends.base import BackendError, Transient
from portal.compute.backends.libvirt_host import embedded_root
from portal.compute.backends.libvirt_xml import run_tool

GIB = 1024**3
# Copies a disk in the background: flat qcow2, grown to the size asked, renamed once complete.
COPY_SCRIPT = (
    '( qemu-img convert -q -O qcow2 "$1" "$2.partial"'
    ' && { [ -z "$4" ] || qemu-img resize -q "$2.partial" "$4"; }'
    ' && mv -f "$2.partial" "$2" || echo failed > "$2.failed" ) </dev/null >"$3" 2>&1 & echo $!'
)


def gib_of(size: int) -> int:
    return -(-size // GIB)


@dataclass(frozen=True)
class Record:
    """One volume's or snapshot's directory."""

    directory: Path
    disk_name: str

    @property
    def final(self) -> Path:
        return self.directory / self.disk_name

    @property
    def partial(self) -> Path:
        return self.directory / f"{self.disk_name}.partial"

    @property
    def failed(self) -> Path:
        return self.directory / f"{self.disk_name}.failed"

    @property
    def job(self) -> dict | None:
        return read_json(self.directory / "job.json")

    @property
    def meta(self) -> dict | None:
        return read_json(self.directory / "meta.json")


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None


def claim(path: Path, data: dict) -> bool:
    """Write `path` unless it exists (atomically: readers never see half of it); False if it did."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    scratch.write_text(json.dumps(data))
    try:
        os.link(scratch, path)
    except FileExistsError:
        return False
    finally:
        scratch.unlink()
    return True


def rewrite(path: Path, data: dict) -> None:
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.write_text(json.dumps(data))
    os.replace(scratch, path)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie has finished


def virtual_size(path: Path) -> int:
    info = json.loads(run_tool(["qemu-img", "info", "-U", "--output=json", str(path)]))
    return int(info["virtual-size"])


def allocated_gib(path: Path) -> int:
    with contextlib.suppress(OSError):
        return max(1, gib_of(path.stat().st_blocks * 512))
    return 1


class CopyJobs:
    """For `LibvirtStorage`: who owns the files, and the copies (uses the backend's `_host` and
    `_run_as`)."""

    def _owner(self, config: dict) -> pwd.struct_passwd | None:
        """Who QEMU runs as, when that is not us: the embedded driver's user, as root."""
        run_as = self._run_as(config)
        if run_as and os.geteuid() == 0 and embedded_root(config["hosts"][0]):
            return pwd.getpwnam(run_as)
        return None

    def _prepare(self, config: dict, record: Record) -> None:
        record.directory.mkdir(parents=True, exist_ok=True)
        owner = self._owner(config)
        if owner:
            for path in (record.directory.parent, record.directory):
                os.chown(path, owner.pw_uid, owner.pw_gid)

    # --- copies ------------------------------------------------------------------------------------

    def _start_convert(self, config: dict, record: Record, source: Path, size_bytes: int = 0) -> None:
        job = {"kind": "convert", "machine": socket.gethostname(), "started": time.time()}
        if not claim(record.directory / "job.json", job):
            return  # another attempt started it
        owner = self._owner(config)
        command = [
            "sh",
            "-c",
            COPY_SCRIPT,
            "sh",
            str(source),
            str(record.final),
            str(record.directory / "copy.log"),
            str(size_bytes or ""),
        ]
        try:
            started = subprocess.run(  # noqa: S603 — our own script, fixed arguments
                command,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
                start_new_session=True,
                user=owner.pw_uid if owner else None,
                group=owner.pw_gid if owner else None,
            )
        except (OSError, subprocess.SubprocessError) as error:
            (record.directory / "job.json").unlink(missing_ok=True)
            raise Transient(
                "The cloud can't copy the disk right now.", f"start qemu-img convert: {error}"
            ) from None
        rewrite(record.directory / "job.json", job | {"pid": int(started.stdout.split()[0])})

    def _start_mirror(self, config: dict, record: Record, uri: str, domain_uuid: str, path: str) -> None:
        job = {"kind": "mirror", "host": uri, "domain": domain_uuid, "path": path}
        if not claim(record.directory / "job.json", job):
            return
        try:
            # A blank flat qcow2 of the disk's size that QEMU fills (libvirt leaves it to us).
            run_tool(
                [
                    "qemu-img",
                    "create",
                    "-q",
                    "-f",
                    "qcow2",
                    str(record.partial),
                    str(virtual_size(Path(path))),
                ]
            )
            owner = self._owner(config)
            if owner:
                os.chown(record.partial, owner.pw_uid, owner.pw_gid)
            self._host(
                config, uri, "copy_start", domain_uuid=domain_uuid, path=path, target=str(record.partial)
            )
        except BackendError:
            (record.directory / "job.json").unlink(missing_ok=True)
            raise

    def _copy_state(self, config: dict, record: Record, *, cancel: bool = False) -> tuple[str, str]:
        """("available" | "creating" | "error", fault) of a record's disk."""
        if record.final.exists():
            return "available", ""
        if record.failed.exists():
            return "error", "The copy could not be made."
        job = record.job
        if job is None:
            return "creating", ""  # the attempt that claimed it has not started the copy yet
        if job["kind"] == "convert":
            pid = job.get("pid")
            if job.get("machine") == socket.gethostname() and pid and not alive(pid):
                if record.final.exists():
                    return "available", ""
                return "error", "The copy was interrupted."
            if cancel and pid and job.get("machine") == socket.gethostname():
                with contextlib.suppress(OSError):
                    os.killpg(os.getpgid(pid), signal.SIGTERM)  # its own session: the copy alone
            return "creating", ""
        answer = self._host(
            config,
            job["host"],
            "copy_status",
            domain_uuid=job["domain"],
            path=job["path"],
            target=str(record.partial),
            final=str(record.final),
            cancel=cancel,
        )
        if answer == "done":
            return "available", ""
        if answer == "gone":
            record.failed.write_text("the mirror ended before it was in step\n")
            return "error", "The copy was interrupted: the server stopped or was deleted meanwhile."
        return "creating", ""
