"""Make one zone of the demo catalog boot real VMs on this machine (docs/backends/libvirt.md,
"Development zone").

Checks what the libvirt backend needs here, builds the tiny busybox guest into `var/libvirt/guest/`
(a Debian cloud kernel, downloaded once) and points the zone (`dev-kvm-1` in Amsterdam by default,
created if missing) at libvirt's embedded QEMU driver with its root in `var/libvirt/root/`: no
daemon, software emulation. The zone offers the small sizes and one image, "Busybox (test VM)".

Idempotent: running it again rewrites the same settings. The web process and the worker read a
zone's settings on every call, so nothing needs restarting.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from portal.catalog.demo import load_demo_catalog
from portal.catalog.models import Flavor, Image, OsFamily, Region, Zone, ZoneStatus
from portal.compute.backends import BackendError, get_backend
from portal.compute.backends import libvirt_guest as guest

BACKEND = "libvirt"
DEFAULT_ZONE = "dev-kvm-1"
# An EU region. The zone sorts after ams1-a and ams1-b, so the map's Amsterdam pin, which picks a
# region's first available zone, still picks a simulated one.
REGION = "ams1"
IMAGE = "Busybox (test VM)"
IMAGE_VERSION = "busybox, Debian cloud kernel"
SMALL_FLAVORS = ("s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-4gb")
# QEMU's monitor sockets live under the root, and a socket path ends at 108 characters.
MAX_ROOT_CHARS = 60


def zone_settings(root: Path, files: guest.GuestFiles) -> dict:
    """The zone's backend settings (overlaid on the backend's OPTIONS from settings)."""
    values = {
        "hosts": [f"qemu:///embed?root={root}"],
        "domain_type": "qemu",  # software emulation: works without /dev/kvm
        "machine": "q35",
        "kernel": str(files.kernel),
        "initrd": str(files.initrd),
        "cmdline": "console=ttyS0 panic=-1 loglevel=6",  # the kernel's notices: a short boot log
        # Rescue mode: the same kernel with the rescue initramfs (it sees the server's disk as vdb).
        "rescue_kernel": str(files.kernel),
        "rescue_initrd": str(files.rescue_initrd),
        "rescue_cmdline": "console=ttyS0 panic=-1 quiet",  # the rescue system's lines, not the kernel's
        "images": {IMAGE: str(files.image)},
        "ram_mib_per_gib": 128,  # a 1 GiB size gets 128 MiB: the busybox guest needs ~60
        "max_ram_mib": 512,
        "cpu_allocation_ratio": 4.0,
        "network": "user",
        "stop_timeout_seconds": 15,
    }
    user = guest.embed_user()
    if user:
        values["embed_user"] = user  # as root without a libvirt-qemu account (see the docs)
    return values


class Command(BaseCommand):
    help = (
        "Point a zone of the demo catalog (default dev-kvm-1) at libvirt's embedded QEMU driver on "
        "this machine, with a tiny busybox test VM, so servers launched there really boot (idempotent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--zone",
            default=DEFAULT_ZONE,
            help=f"Zone code (default {DEFAULT_ZONE}). An existing zone is switched to libvirt; "
            f"a new one is created in {REGION}.",
        )
        parser.add_argument(
            "--cache-dir",
            type=Path,
            help="Where the guest's kernel and initramfs are built (default: var/libvirt/guest).",
        )
        parser.add_argument(
            "--force", action="store_true", help="Run even with DEBUG off (it is meant for development)."
        )

    def handle(self, *args, **options) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "DEBUG is off, so this looks like a real deployment: refusing to point a zone at a "
                "test VM on this machine. Pass --force if you really mean it."
            )
        if BACKEND not in settings.COMPUTE_BACKENDS:
            raise CommandError(f"settings.COMPUTE_BACKENDS has no {BACKEND!r} entry.")
        self._check_prerequisites()
        self._migrate()

        var = Path(settings.VAR_DIR).resolve() / "libvirt"
        root = var / "root"
        if len(str(root)) > MAX_ROOT_CHARS:
            raise CommandError(
                f"The libvirt root {root} is too long for QEMU's sockets (at most {MAX_ROOT_CHARS} "
                "characters): set PORTAL_VAR_DIR to a shorter directory."
            )
        cache = (options["cache_dir"] or var / "guest").resolve()
        self.stdout.write(f"Test VM: building it in {cache} (only the first run downloads the kernel)…")
        try:
            files = guest.guest_files(cache)
        except guest.GuestUnavailable as error:
            raise CommandError(f"Could not build the test VM: {error}") from None
        user = guest.embed_user()
        if user:
            var.mkdir(parents=True, exist_ok=True)
            self._check_reachable(user, [files.kernel, files.initrd, files.rescue_initrd, files.image], var)

        zone, created = self._configure(options["zone"], zone_settings(root, files))
        health = self._check_zone(zone)
        self._report(zone, created, cache, root, user, health)

    # --- checks ----------------------------------------------------------------------------------

    def _check_prerequisites(self) -> None:
        missing = guest.missing_packages()
        if not missing:
            return
        lines = [
            "The libvirt backend can't boot VMs on this machine yet. Install the missing Debian packages:",
            "",
            f"    sudo apt-get install {' '.join(missing)}",
        ]
        if guest.binding_missing():
            lines += [
                "",
                "then the Python binding (builds against libvirt-dev):",
                "",
                "    .venv/bin/pip install -e '.[libvirt]'",
            ]
        lines += ["", "and run this command again."]
        raise CommandError("\n".join(lines))

    def _migrate(self) -> None:
        """Run before `make run` ever did, the database is not there yet: migrate it as make run would."""
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            self.stdout.write("Database: applying migrations first (as `make run` does)…")
            call_command("migrate", interactive=False, verbosity=0)

    def _check_reachable(self, user: str, files: list[Path], var: Path) -> None:
        """QEMU runs as `user`: it must be able to read the guest and reach the root's directory."""
        for path in files:
            if not path.stat().st_mode & 0o004:
                raise CommandError(f"{path} is not readable by {user!r}, who runs QEMU: chmod o+r it.")
        for directory in {*(parent for path in files for parent in path.parents), var, *var.parents}:
            if directory.exists() and not directory.stat().st_mode & 0o001:
                raise CommandError(
                    f"{directory} can't be entered by {user!r}, who runs QEMU here (as root without a "
                    "libvirt-qemu account): `chmod o+x` it, or set PORTAL_VAR_DIR to a directory "
                    "others can enter."
                )

    def _check_zone(self, zone: Zone) -> str:
        """Ask the backend, as the reconciler would: proves the driver starts, and records capacity."""
        backend = get_backend(BACKEND)
        try:
            health = backend.check_health(zone.code)
            capacity = backend.zone_capacity(zone.code)
        except BackendError as error:
            Zone.objects.filter(pk=zone.pk).update(
                backend_checked_at=timezone.now(), backend_error=error.detail[:2000]
            )
            raise CommandError(
                f"Zone {zone.code} is configured, but libvirt did not answer: {error.detail}"
            ) from None
        now = timezone.now()
        Zone.objects.filter(pk=zone.pk).update(
            free_vcpus=capacity.free_vcpus,
            free_ram_gib=capacity.free_ram_gib,
            capacity_updated_at=now,
            backend_checked_at=now,
            backend_error="",
        )
        return health

    # --- the catalog -----------------------------------------------------------------------------

    @transaction.atomic
    def _configure(self, code: str, backend_settings: dict) -> tuple[Zone, bool]:
        load_demo_catalog()  # the region and sizes (idempotent; `make run` loads it too)
        zone, created = Zone.objects.select_for_update().get_or_create(
            code=code,
            defaults={"region": Region.objects.get(code=REGION), "status": ZoneStatus.AVAILABLE},
        )
        zone.backend = BACKEND
        zone.backend_settings = backend_settings
        zone.full_clean()
        zone.save(update_fields=["backend", "backend_settings"])
        image, _ = Image.objects.update_or_create(
            name=IMAGE,
            defaults={
                "os_family": OsFamily.DEBIAN,
                "version": IMAGE_VERSION,
                "min_disk_gib": 1,
                "license_price_hourly": Decimal(0),
                "is_active": True,
            },
        )
        image.zones.add(zone)
        for flavor in Flavor.objects.filter(code__in=SMALL_FLAVORS):
            flavor.zones.add(zone)
        return zone, created

    def _report(
        self, zone: Zone, created: bool, cache: Path, root: Path, user: str | None, health: str
    ) -> None:
        zone.refresh_from_db()
        sizes = ", ".join(
            Flavor.objects.filter(code__in=SMALL_FLAVORS, zones=zone).values_list("name", flat=True)
        )
        what = "created" if created else "configured (it existed)"
        lines = [
            f"Zone {zone.code} in {zone.region.name} {what}: backend {BACKEND}, libvirt's embedded QEMU driver",
            f"  root      {root}",
            f"  test VM   {cache}",
            f"  offers    image {IMAGE!r}, sizes {sizes}",
            f"  host      {health}",
        ]
        if user:
            lines.append(f"  QEMU runs as {user!r} (running as root without a libvirt-qemu account)")
        lines += [
            "",
            "To try it: `make run` (if it is not running already; nothing needs restarting), sign in as",
            f"customer@demo.test, launch a server in zone {zone.code} ({zone.region.name}) with the image",
            f"{IMAGE!r} and watch its console on the server's page: the kernel boots, then the VM prints",
            f"{guest.MARKER} <name> <instance id> (after ~5 s).",
        ]
        if zone.status != ZoneStatus.AVAILABLE:
            lines.append(
                f"Note: the zone is {zone.get_status_display().lower()}; set it to available in admin."
            )
        self.stdout.write("\n".join(lines))
