"""A cloud that exists only in the database, for development, demos and tests.

Servers take a few seconds to boot, stop or reboot (so the UI shows progress); each zone has a
capacity and refuses with "sold out" when full; addresses come from a per-zone pool. Faults are
injected from `SimulatedKnobs` (admin) or settings: a share of transient errors, slow calls, and a
marker in the name that makes a server fail to boot.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.compute.backends.base import (
    IDEMPOTENCY_METADATA_KEY,
    REBUILD_METADATA_KEY,
    BackendError,
    BackendState,
    Capability,
    ComputeBackend,
    NotFound,
    Rejected,
    ServerSpec,
    ServerState,
    Transient,
    ZoneCapacity,
    not_available,
)
from portal.compute.backends.simulated_console import SimulatedConsole
from portal.compute.backends.simulated_firewall import SimulatedFirewall, launch_rules
from portal.compute.backends.simulated_networks import SimulatedNetworks
from portal.compute.backends.simulated_password import SimulatedPassword
from portal.compute.backends.simulated_storage import SimulatedStorage

B = BackendState
# Where a transition lands once its time is up.
LANDS = {
    B.BUILDING: B.RUNNING,
    B.STOPPING: B.STOPPED,
    B.STARTING: B.RUNNING,
    B.REBOOTING: B.RUNNING,
    B.RESIZING: B.STOPPED,
    B.RESCUING: B.RESCUE,
    B.UNRESCUING: B.RUNNING,
}


# What the rescue system prints as it boots (its console asks for a login: root, no password).
RESCUE_BOOT = [
    "[    0.000000] Linux version 6.1.0-cloud-amd64 (rescue system)",
    "[    0.000000] Command line: console=ttyS0 rescue",
    "[    0.388410] virtio_blk virtio1: [vdb] the server's own disk, not mounted",
    "",
    "Rescue system: the server's own disk is /dev/vdb (mount /dev/vdb1 /mnt to repair it).",
    "Leave rescue mode from the portal to boot it again.",
    "",
]

# CPU samples: one a minute for a window up to 6 hours, then sparser as windows grow.
SAMPLE_STEPS = ((timedelta(hours=6), 60), (timedelta(days=2), 300), (timedelta(days=14), 1800))


def _cpu_wave(backend_id: str, begin: datetime, finish: datetime, window: timedelta) -> list:
    step = next((seconds for longest, seconds in SAMPLE_STEPS if window <= longest), 3600)
    seed = int.from_bytes(hashlib.sha256(backend_id.encode()).digest()[:4])
    level = 6 + seed % 35  # a mostly idle web server or a busy worker: 6-40 %
    swing = level * (0.5 + (seed >> 8) % 40 / 100)
    samples = []
    moment = math.ceil(begin.timestamp() / step) * step
    while moment <= finish.timestamp():
        noise = int.from_bytes(hashlib.blake2b(f"{backend_id}:{moment}".encode(), digest_size=4).digest())
        noise /= 2**32
        hour_of_day = moment % 86400 / 3600
        value = level + swing * math.sin((hour_of_day - 8) / 24 * 2 * math.pi) + (noise - 0.5) * level * 0.4
        if noise > 0.993:  # a cron job or a deploy
            value += 15 + noise * 15
        samples.append((datetime.fromtimestamp(moment, tz=UTC), round(min(100.0, max(0.5, value)), 1)))
        moment += step
    return samples


def _knobs():
    from portal.compute.models import SimulatedKnobs

    return SimulatedKnobs.objects.first() or SimulatedKnobs.from_settings()


class SimulatedBackend(
    SimulatedFirewall, SimulatedPassword, SimulatedNetworks, SimulatedStorage, ComputeBackend
):
    """Every capability (`capabilities` in simulated_storage.py: a zone's settings may declare
    some absent); volumes and snapshots are simulated_storage.py's."""

    batch_size = 50  # creating or looking at servers is a few statements however many

    def _call(self):
        """A call about one server: maybe slow, maybe a transient failure, as the knobs say."""
        knobs, (fault,) = self._roll(1)
        if fault is not None:
            raise fault
        return knobs

    # --- helpers ---------------------------------------------------------------------------

    def _row(self, backend_id: str, *, lock: bool = False):
        from portal.compute.models import SimulatedServer

        rows = SimulatedServer.objects.select_for_update() if lock else SimulatedServer.objects
        row = rows.filter(backend_id=backend_id, deleted=False).first()
        if row is None:
            raise NotFound("The server no longer exists in the cloud.", f"simulated {backend_id} not found")
        return row

    def _settle(self, row) -> None:
        """Finish a transition whose time is up (the state is computed lazily on read)."""
        if row.target_state and row.transition_until and row.transition_until <= timezone.now():
            row.state, row.target_state, row.transition_until = row.target_state, "", None
            row.save(update_fields=["state", "target_state", "transition_until"])

    def _state(self, row) -> ServerState:
        return ServerState(
            backend_id=row.backend_id,
            state=BackendState(row.state),
            addresses=tuple(address for address in (row.address, row.address6) if address),
            fault=row.fault,
            flavor=row.flavor_code,
            idempotency_key=row.idempotency_key,
            name=row.name,
            metadata=row.metadata,
        )

    def _begin(self, row, during: BackendState, seconds: float) -> None:
        row.state = during
        row.target_state = LANDS[during]
        row.transition_until = timezone.now() + timedelta(seconds=seconds)
        row.save(update_fields=["state", "target_state", "transition_until"])

    def _total_capacity(self, zone: str) -> ZoneCapacity:
        from portal.catalog.models import Zone
        from portal.compute.models import SimulatedZone

        sized = SimulatedZone.objects.filter(zone_code=zone).first()
        if sized is None:
            catalog = Zone.objects.filter(code=zone).values("free_vcpus", "free_ram_gib").first()
            if catalog is None:
                raise Rejected("This zone does not exist in the cloud.", f"unknown zone {zone}")
            # The catalog's free capacity when the zone is first used becomes its size.
            sized, _ = SimulatedZone.objects.get_or_create(
                zone_code=zone,
                defaults={"total_vcpus": catalog["free_vcpus"], "total_ram_gib": catalog["free_ram_gib"]},
            )
        return ZoneCapacity(sized.total_vcpus, sized.total_ram_gib)

    def _used(self, zone: str) -> tuple[int, int]:
        from django.db.models import Sum

        from portal.compute.models import SimulatedServer

        used = SimulatedServer.objects.filter(zone_code=zone, deleted=False).aggregate(
            vcpus=Sum("vcpus"), ram=Sum("ram_gib")
        )
        return used["vcpus"] or 0, used["ram"] or 0

    def _pool(self, zone: str) -> ipaddress.IPv4Network:
        # A /24 per zone inside 100.64.0.0/10 (shared address space: never routed on the internet).
        digest = int(hashlib.sha256(zone.encode()).hexdigest(), 16)
        return ipaddress.IPv4Network(f"100.{64 + digest % 64}.{digest // 64 % 256}.0/24")

    def _free_addresses(self, zone: str, count: int) -> list[str]:
        """Up to `count` unused addresses of the zone's pool, lowest first."""
        from portal.compute.models import SimulatedServer

        taken = set(
            SimulatedServer.objects.filter(zone_code=zone, deleted=False).values_list("address", flat=True)
        )
        free = []
        for host in self._pool(zone).hosts():
            if len(free) == count:
                break
            if str(host) not in taken and int(host) % 256 >= 10:
                free.append(str(host))
        return free

    def _lock_zone(self, zone: str) -> ZoneCapacity:
        """The zone's size, its row locked until the transaction ends: one creation or resize at a
        time per zone, so two launches can't both take the last capacity."""
        from portal.compute.models import SimulatedZone

        sized = SimulatedZone.objects.select_for_update().filter(zone_code=zone).first()
        if sized is None:
            self._total_capacity(zone)  # sized from the catalog on first use
            sized = SimulatedZone.objects.select_for_update().get(zone_code=zone)
        return ZoneCapacity(sized.total_vcpus, sized.total_ram_gib)

    def _roll(self, count: int) -> tuple[object, list[Transient | None]]:
        """One call to the cloud for `count` servers: maybe slow, and each server's part of it maybe a
        transient failure, as the knobs say."""
        knobs = _knobs()
        if knobs.slow_call_seconds:
            time.sleep(knobs.slow_call_seconds)
        rate = knobs.transient_error_rate
        return knobs, [
            Transient("The cloud is busy; we will retry.", "simulated transient fault")
            if rate and random.random() < rate  # noqa: S311
            else None
            for _ in range(count)
        ]

    # --- the interface ---------------------------------------------------------------------

    def create_server(self, spec: ServerSpec) -> ServerState:
        result = self.create_servers([spec])[0]
        if isinstance(result, BackendError):
            raise result
        return result

    def create_servers(self, specs) -> list[ServerState | BackendError]:
        """A launch of several servers in a few statements: those that exist are adopted, the rest
        are made per zone under the zone's lock, each refused alone when its zone is full."""
        from portal.compute.models import SimulatedServer

        knobs, results = self._roll(len(specs))
        asked = [n for n, result in enumerate(results) if result is None]
        if not asked:
            return results
        rows = SimulatedServer.objects.filter(
            idempotency_key__in=[specs[n].idempotency_key for n in asked], deleted=False
        )
        existing = {row.idempotency_key: row for row in rows}
        by_zone: dict[str, list[int]] = {}
        for n in asked:
            row = existing.get(specs[n].idempotency_key)
            if row is not None:
                self._settle(row)
                results[n] = self._state(row)
            else:
                by_zone.setdefault(specs[n].zone, []).append(n)
        for zone, numbers in by_zone.items():
            try:
                self._create_in_zone(knobs, zone, [specs[n] for n in numbers], numbers, results)
            except IntegrityError:
                # A concurrent call took one of the addresses: answer what exists, and let the rest
                # be retried.
                for n in numbers:
                    found = self.find_server(zone, specs[n].idempotency_key)
                    results[n] = found or Transient("The cloud is busy; we will retry.", "simulated race")
        return results

    def _create_in_zone(self, knobs, zone: str, specs, numbers, results) -> None:
        from portal.compute.models import SimulatedServer

        with transaction.atomic():
            total = self._lock_zone(zone)
            used_vcpus, used_ram = self._used(zone)
            addresses = iter(self._free_addresses(zone, len(specs)))
            enforces_rules = Capability.FIREWALL in self.capabilities(zone)
            made = []
            for n, spec in zip(numbers, specs, strict=True):
                if spec.image_backend_id:
                    try:
                        self._image_for(spec.image_backend_id, zone)
                    except Rejected as refused:
                        results[n] = refused
                        continue
                if used_vcpus + spec.vcpus > total.free_vcpus or used_ram + spec.ram_gib > total.free_ram_gib:
                    results[n] = Rejected(
                        f"Zone {zone} is sold out for this size right now. Try a smaller size or another zone.",
                        f"capacity {total} used {used_vcpus} vCPU/{used_ram} GiB, asked {spec.vcpus}/{spec.ram_gib}",
                    )
                    continue
                # The portal's pools' addresses where it gives them (Capability.OPERATOR_ADDRESSES),
                # else the zone's own pool's; an IPv6 address only from the portal.
                given = {("6" if ":" in a else "4"): a for a in spec.addresses}
                address = given.get("4") or next(addresses, "")
                if address == "":
                    results[n] = Rejected(
                        "This zone has run out of public addresses. Please try another zone.",
                        f"pool of {zone} full",
                    )
                    continue
                used_vcpus, used_ram = used_vcpus + spec.vcpus, used_ram + spec.ram_gib
                failing = bool(knobs.fail_marker) and knobs.fail_marker in spec.name
                made.append(
                    (
                        n,
                        SimulatedServer(
                            backend_id=f"sim-{uuid.uuid4().hex[:12]}",
                            idempotency_key=spec.idempotency_key,
                            zone_code=zone,
                            name=spec.name,
                            vcpus=spec.vcpus,
                            ram_gib=spec.ram_gib,
                            flavor_code=spec.flavor,
                            state=B.BUILDING,
                            target_state=B.ERROR if failing else B.RUNNING,
                            transition_until=timezone.now() + timedelta(seconds=knobs.boot_seconds),
                            address=address,
                            address6=given.get("6"),
                            root_disk_gib=spec.root_disk_gib,
                            image_ref=spec.image_backend_id,
                            fault="The image failed to boot (kernel panic during start-up)."
                            if failing
                            else "",
                            metadata={IDEMPOTENCY_METADATA_KEY: spec.idempotency_key},
                            firewall_rules=launch_rules(spec) if enforces_rules else None,
                        ),
                    )
                )
            SimulatedServer.objects.bulk_create([row for _, row in made])
        for n, row in made:
            results[n] = self._state(row)

    def get_server(self, backend_id: str) -> ServerState:
        result = self.get_servers([backend_id])[0]
        if isinstance(result, BackendError):
            raise result
        return result

    def get_servers(self, backend_ids) -> list[ServerState | BackendError]:
        from portal.compute.models import SimulatedServer

        _, results = self._roll(len(backend_ids))
        asked = [backend_ids[n] for n, result in enumerate(results) if result is None]
        with transaction.atomic():
            # Locked while they settle, as a transition (stop, start, …) locks its row.
            locked = SimulatedServer.objects.select_for_update().filter(backend_id__in=asked, deleted=False)
            rows = {row.backend_id: row for row in locked.order_by("pk")}
            self._settle_all(rows.values())
        for n, backend_id in enumerate(backend_ids):
            if results[n] is not None:
                continue
            row = rows.get(backend_id)
            if row is None:
                results[n] = NotFound(
                    "The server no longer exists in the cloud.", f"simulated {backend_id} not found"
                )
                continue
            if row.state == B.ERROR and not row.fault:
                row.fault = "The server stopped responding."
            results[n] = self._state(row)
        return results

    def _settle_all(self, rows) -> None:
        """`_settle` for many rows (locked by the caller): one UPDATE per state they land in."""
        from portal.compute.models import SimulatedServer

        now = timezone.now()
        landing: dict[str, list] = {}
        for row in rows:
            if row.target_state and row.transition_until and row.transition_until <= now:
                landing.setdefault(row.target_state, []).append(row)
        for target, due in landing.items():
            SimulatedServer.objects.filter(pk__in=[row.pk for row in due]).update(
                state=target, target_state="", transition_until=None
            )
            for row in due:
                row.state, row.target_state, row.transition_until = target, "", None

    def find_server(self, zone: str, idempotency_key: str) -> ServerState | None:
        from portal.compute.models import SimulatedServer

        row = SimulatedServer.objects.filter(idempotency_key=idempotency_key, deleted=False).first()
        if row is None:
            return None
        self._settle(row)
        return self._state(row)

    def list_servers(self, zone: str) -> list[ServerState]:
        from portal.compute.models import SimulatedServer

        self._call()
        rows = list(SimulatedServer.objects.filter(zone_code=zone, deleted=False))
        for row in rows:
            self._settle(row)
        return [self._state(row) for row in rows]

    def _transition(
        self, backend_id: str, *, allowed: set[str], during: BackendState, noop: set[str]
    ) -> None:
        knobs = self._call()
        with transaction.atomic():
            row = self._row(backend_id, lock=True)
            self._settle(row)
            if row.state in noop or row.state == during:
                return  # already there or on the way: repeating a call changes nothing
            if row.state not in allowed:
                raise Rejected(
                    f"The server is {row.state} and can't do that right now.",
                    f"simulated {backend_id}: {row.state} -> {during} refused",
                )
            self._begin(row, during, knobs.action_seconds)

    def start_server(self, backend_id: str) -> None:
        self._transition(backend_id, allowed={B.STOPPED}, during=B.STARTING, noop={B.RUNNING})

    def stop_server(self, backend_id: str) -> None:
        self._transition(backend_id, allowed={B.RUNNING}, during=B.STOPPING, noop={B.STOPPED})

    def reboot_server(self, backend_id: str, *, hard: bool = False) -> None:
        self._transition(backend_id, allowed={B.RUNNING}, during=B.REBOOTING, noop=set())

    def rescue_server(self, backend_id: str) -> None:
        """The rescue system boots (for the knobs' action time); its console says so."""
        self._rescue_call(backend_id, allowed={B.RUNNING, B.STOPPED}, during=B.RESCUING, noop={B.RESCUE})

    def unrescue_server(self, backend_id: str) -> None:
        self._rescue_call(backend_id, allowed={B.RESCUE}, during=B.UNRESCUING, noop=set())

    def _rescue_call(self, backend_id: str, **transition) -> None:
        row = self._row(backend_id)
        if Capability.RESCUE not in self.capabilities(row.zone_code):
            raise not_available(Capability.RESCUE, row.zone_code)
        self._transition(backend_id, **transition)

    def resize_server(self, backend_id: str, *, flavor: str, vcpus: int, ram_gib: int) -> None:
        knobs = self._call()
        with transaction.atomic():
            row = self._row(backend_id, lock=True)
            self._settle(row)
            if row.flavor_code == flavor and row.state in (B.STOPPED, B.RESIZING):
                return
            if row.state != B.STOPPED:
                raise Rejected(
                    "Stop the server before resizing it.", f"simulated {backend_id} is {row.state}"
                )
            total = self._lock_zone(row.zone_code)
            used_vcpus, used_ram = self._used(row.zone_code)
            if (
                used_vcpus - row.vcpus + vcpus > total.free_vcpus
                or used_ram - row.ram_gib + ram_gib > total.free_ram_gib
            ):
                raise Rejected(
                    f"Zone {row.zone_code} has no room for that size right now. Try a smaller size.",
                    "simulated resize over capacity",
                )
            row.flavor_code, row.vcpus, row.ram_gib = flavor, vcpus, ram_gib
            row.save(update_fields=["flavor_code", "vcpus", "ram_gib"])
            self._begin(row, B.RESIZING, knobs.action_seconds)

    def rebuild_server(self, backend_id: str, *, image_ref: str, rebuild_key: str) -> None:
        """The disk is the snapshot's again: `rebuilding` for the knobs' action time, then the
        state it had (running or stopped). The image must be an available snapshot of this zone
        that fits the server's disk."""
        knobs = self._call()
        with transaction.atomic():
            row = self._row(backend_id, lock=True)
            self._settle(row)
            if row.metadata.get(REBUILD_METADATA_KEY) == rebuild_key:
                return  # asked before: under way or done
            if Capability.SERVER_REBUILD not in self.capabilities(row.zone_code):
                raise not_available(Capability.SERVER_REBUILD, row.zone_code)
            if row.state not in (B.RUNNING, B.STOPPED):
                raise Rejected(
                    f"The server is {row.state} and can't be restored right now.",
                    f"simulated {backend_id}: {row.state} -> rebuilding refused",
                )
            snapshot = self._image_for(image_ref, row.zone_code)
            if snapshot.min_disk_gib > row.root_disk_gib:
                raise Rejected(
                    f"That snapshot needs a disk of at least {snapshot.min_disk_gib} GiB; "
                    f"this server's is {row.root_disk_gib} GiB.",
                    f"simulated image {image_ref} min disk {snapshot.min_disk_gib}",
                )
            row.image_ref = image_ref
            row.metadata = {**row.metadata, REBUILD_METADATA_KEY: rebuild_key}
            row.state, row.target_state = B.REBUILDING, row.state
            if knobs.fail_marker and knobs.fail_marker in snapshot.name:  # the knobs' failing image
                row.target_state, row.fault = B.ERROR, "The restored disk failed to boot."
            row.transition_until = timezone.now() + timedelta(seconds=knobs.action_seconds)
            row.save(
                update_fields=["image_ref", "metadata", "state", "target_state", "transition_until", "fault"]
            )

    def delete_server(self, backend_id: str) -> None:
        from portal.compute.models import SimulatedServer

        self._call()
        with transaction.atomic():
            SimulatedServer.objects.filter(backend_id=backend_id).update(deleted=True, address=None)
            self._detach_from_deleted_server(backend_id)
            self._leave_networks(backend_id)

    def zone_capacity(self, zone: str) -> ZoneCapacity:
        self._call()
        total = self._total_capacity(zone)
        used_vcpus, used_ram = self._used(zone)
        return ZoneCapacity(max(0, total.free_vcpus - used_vcpus), max(0, total.free_ram_gib - used_ram))

    def console_output(self, backend_id: str) -> str:
        """What a small cloud image prints while it boots, then its login prompt (nothing while it
        is still building; the boot again after each start)."""
        self._call()
        row = self._row(backend_id)
        self._settle(row)
        if row.state in (B.BUILDING, B.STOPPED, B.RESIZING):
            return ""
        stamp = row.created_at.strftime("%Y-%m-%d %H:%M:%S")
        lines = [
            "[    0.000000] Linux version 6.1.0-cloud-amd64 (simulated cloud image)",
            f"[    0.000000] Command line: console=ttyS0 ds=nocloud;i={row.idempotency_key}",
            "[    0.412881] Run /init as init process",
            f"[    1.020304] cloud-init[213]: Cloud-init v. 24.1 running 'init' at {stamp} UTC",
            f"[    1.130042] cloud-init[213]: Set hostname to {row.name}",
            "[    1.200415] cloud-init[213]: Authorized SSH keys for user 'debian'",
        ]
        if row.address:
            lines.append(f"[    1.310177] cloud-init[213]: ens3: {row.address}/24 up")
        if row.state in (B.RESCUING, B.RESCUE):
            return "\n".join([*RESCUE_BOOT, f"{row.name}-rescue login: "]) + "\n"
        if row.state == B.ERROR:
            lines.append(f"[    1.402211] {row.fault or 'Kernel panic - not syncing'}")
        else:
            lines += ["", f"Debian GNU/Linux 13 {row.name} ttyS0", "", f"{row.name} login: "]
        return "\n".join(lines) + "\n"

    def open_serial_console(self, backend_id: str) -> SimulatedConsole:
        """A login prompt and a small shell (simulated_console.py), while the server runs, or the
        rescue system's with the server's disk at /dev/vdb, while it is in rescue."""
        self._call()
        row = self._row(backend_id)
        self._settle(row)
        if row.state == B.RESCUE:
            return SimulatedConsole(
                name=f"{row.name}-rescue", address=row.address or "", booted_at=row.created_at, rescue=True
            )
        if row.state != B.RUNNING:
            raise Rejected(
                f"The server is {row.state}: its serial console answers while it runs.",
                f"simulated {backend_id} is {row.state}",
            )
        return SimulatedConsole(
            name=row.name, address=row.address or "", booted_at=row.created_at, passwords=row.password_hashes
        )

    def cpu_samples(self, backend_id: str, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
        """Plausible and repeatable: the same server at the same minute always gives the same figure.

        A level of the server's own, a daily wave (busiest mid-afternoon UTC), noise and the odd
        spike. This cloud keeps no history of states, so a server reports samples from its creation
        until now while it runs, and none while it is stopped or building.
        """
        self._call()
        row = self._row(backend_id)
        self._settle(row)
        if row.state not in (B.RUNNING, B.REBOOTING, B.STOPPING, B.RESCUE):
            return []
        return _cpu_wave(backend_id, max(start, row.created_at), min(end, timezone.now()), end - start)
