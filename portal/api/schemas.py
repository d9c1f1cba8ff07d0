"""Request and response bodies of the public API (they are also the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from django.conf import settings
from ninja import Field, Schema
from pydantic import ConfigDict, Discriminator, Tag, field_validator

from portal.budgets.models import BUDGET_MAX_AMOUNT, BUDGET_MIN_AMOUNT
from portal.compute.services.firewalls import DESCRIPTION_MAX_LENGTH, PORT_MAX, PORT_MIN
from portal.compute.services.instances import NAME_MAX_LENGTH, ROOT_DISK_MAX_GIB
from portal.compute.services.volumes import VOLUME_MAX_GIB, VOLUME_MIN_GIB, VOLUME_NAME_MAX_LENGTH


def _text_refusal(value: str) -> str | None:
    if "\x00" in value:
        return "Text may not contain NUL characters (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "Text must be valid Unicode: no unpaired surrogates (\\ud800 to \\udfff)"
    return None


class InputSchema(Schema):
    """The base of every request body (`*In`): what a client sends is taken as it is or refused.

    - An unknown field is a 422 naming it, not ignored: a misspelt `termination_protecton` or an
      `admin: true` would otherwise be dropped silently and the request run without it.
    - Strict types: JSON `true` is not the integer 1, `"5"` is not 5, `1.0` is not 1, `1` is not a
      string. UUIDs and decimals have no JSON type of their own, so fields of those types take a
      string (a decimal also a number): they say `strict=False`.
    - No text may hold a NUL or an unpaired surrogate: neither can be stored (PostgreSQL refuses
      NUL in text, UTF-8 has no surrogates), and no name, key or script needs one.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        texts = value if isinstance(value, list | tuple) else (value,)
        for text in texts:
            if isinstance(text, str) and (refusal := _text_refusal(text)):
                raise ValueError(refusal)
        return value


def _id_or_name_kind(value: Any) -> str | None:
    # `type(...) is int`: a JSON true is a bool, which Python counts as an int.
    if type(value) is int:
        return "id"
    return "name" if isinstance(value, str) else None


# One error, "an id or a name", for a value that is neither, instead of one per member of the union.
IdOrName = Annotated[
    Annotated[int, Tag("id")] | Annotated[str, Tag("name")],
    Discriminator(
        _id_or_name_kind,
        custom_error_type="id_or_name",
        custom_error_message="Give an id (a JSON integer) or a name (a string)",
    ),
]


def _bounds(**bounds) -> dict:
    """JSON-schema bounds a service checks: documented here, checked there with the request's other
    rules, so that one 422 lists every problem (the schema's own checks would answer first, alone)."""
    return {"json_schema_extra": bounds}


class Problem(Schema):
    """application/problem+json (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class FieldError(Schema):
    field: str | None = Field(description="The field it is about; null: the request as a whole.")
    message: str


Problem.model_rebuild()

# --- projects ---------------------------------------------------------------------------------


class QuotaOut(Schema):
    instances: int
    vcpus: int
    ram_gib: int
    volume_gib: int


class ProjectOut(Schema):
    id: int
    slug: str
    name: str
    description: str
    default_zone: str | None
    quota: QuotaOut
    used: QuotaOut
    url: str


class ProjectList(Schema):
    items: list[ProjectOut]


# --- catalog ----------------------------------------------------------------------------------


class Placement(Schema):
    allowed: bool
    reasons: list[str]


class ZoneOut(Schema):
    code: str
    region: str
    region_name: str
    city: str
    country: str
    jurisdiction: str
    jurisdiction_name: str
    certifications: list[str]
    status: str
    accepts_launches: bool
    availability: Literal["available", "limited", "sold_out", "closed"] = Field(
        description="Room for new servers: limited means the larger sizes may not fit."
    )
    placement: Placement = Field(
        description="Whether the token's organization (or project) policy allows it."
    )


class ZoneList(Schema):
    items: list[ZoneOut]


class FlavorOut(Schema):
    code: str
    name: str
    vcpus: int
    ram_gib: int
    root_disk_gib: int
    price_hourly: Decimal
    price_monthly: Decimal
    currency: str
    zones: list[str]


class FlavorList(Schema):
    items: list[FlavorOut]


class ImageOut(Schema):
    id: int
    name: str
    os_family: str
    version: str
    min_disk_gib: int
    license_price_hourly: Decimal
    currency: str
    zones: list[str]


class ImageList(Schema):
    items: list[ImageOut]


class PricesOut(Schema):
    currency: str
    disk_gib_hour: Decimal
    volume_gib_hour: Decimal
    hours_per_month: Decimal
    flavors: dict[str, Decimal]
    image_licenses: dict[str, Decimal]


# --- instances and operations -----------------------------------------------------------------


class OperationRef(Schema):
    id: UUID
    url: str


class InstanceOut(Schema):
    id: UUID
    name: str
    project: int
    status: str
    zone: str
    flavor: str
    image: str
    image_id: int
    root_disk_gib: int
    addresses: list[str]
    ssh_command: str
    firewall: int | None
    firewall_state: str = Field(
        description="Whether the cloud has the server's current firewall rules: applied, applying, "
        'failed (see firewall_message), or "" (its launch\'s rules, not checked yet).'
    )
    firewall_applied_at: datetime | None = Field(
        description="When the cloud last had them applied or checked."
    )
    firewall_message: str
    termination_protection: bool
    reverse_dns: str = Field(description="The name the public address resolves back to (PTR); empty for none.")
    fault_message: str
    batch: UUID | None
    created_at: datetime
    running_since: datetime | None
    url: str


class InstancePage(Schema):
    items: list[InstanceOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last.")
    next: str | None = Field(description="The next page's URL; null on the last page.")


class LaunchVolumeIn(InputSchema):
    name: str = Field(
        description="Each server gets a volume named <server name>-<name>.",
        **_bounds(minLength=1, maxLength=VOLUME_NAME_MAX_LENGTH),
    )
    size_gib: int = Field(**_bounds(minimum=VOLUME_MIN_GIB, maximum=VOLUME_MAX_GIB))


class LaunchIn(InputSchema):
    project: IdOrName = Field(description="Project id or slug.")
    name: str = Field(
        description="Servers are named name-1…name-N when count > 1.",
        **_bounds(minLength=1, maxLength=NAME_MAX_LENGTH),
    )
    count: int = Field(1, **_bounds(minimum=1, maximum=settings.COMPUTE_MAX_LAUNCH_COUNT))
    zone: str = Field(description="Zone code, e.g. fra1-a (GET /catalog/zones).")
    flavor: str = Field(description="Flavor code, e.g. s-1vcpu-2gb (GET /catalog/flavors).")
    image: IdOrName = Field(description="Image id or name, e.g. “Debian 13” (GET /catalog/images).")
    root_disk_gib: int | None = Field(
        None,
        description="Default: the larger of the size's and the image's.",
        **_bounds(minimum=1, maximum=ROOT_DISK_MAX_GIB),
    )
    ssh_keys: list[IdOrName] = Field(default_factory=list, description="SSH key ids or names of the project.")
    firewall: int | None = Field(None, description="Firewall rule set id of the project.")
    user_data: str = Field(
        "",
        description=f"cloud-init user data, at most {settings.COMPUTE_USER_DATA_MAX_BYTES} bytes in UTF-8.",
    )
    termination_protection: bool = False
    new_volumes: list[LaunchVolumeIn] = Field(
        default_factory=list,
        description="Volumes created with each server and attached once it runs (zones with volumes only).",
    )
    existing_volumes: list[str] = Field(
        default_factory=list,
        description="Ids of the project's unattached volumes in the zone, attached once the server "
        "runs; with count 1 only.",
    )
    networks: list[str] = Field(
        default_factory=list,
        description="Ids of the project's private networks in the zone (GET /networks): each server joins "
        "them once it runs. Zones with private networks only.",
    )


class LaunchedVolume(Schema):
    id: UUID
    name: str
    size_gib: int
    status: str
    url: str
    operation: OperationRef | None = Field(
        description="Its creation, for a new volume; null for an existing one."
    )


class LaunchedInstance(Schema):
    id: UUID
    name: str
    status: str
    url: str
    operation: OperationRef
    volumes: list[LaunchedVolume] = Field(
        default_factory=list, description="Attached once the server runs (GET the volume for its status)."
    )


class LaunchOut(Schema):
    batch: UUID
    budget_warning: str | None
    instances: list[LaunchedInstance]


class ActionIn(InputSchema):
    action: Literal["start", "stop", "reboot", "hard_reboot", "resize", "rescue", "unrescue"] = Field(
        description="`rescue` boots the rescue system with the server's own disk attached as a second "
        "disk (status `rescuing`, then `rescue`; only where the zone has rescue mode, else 409); "
        "`unrescue` boots its own disk again (`unrescuing`, then `running`)."
    )
    flavor: str | None = Field(None, description="For resize: the new flavor code.")


class ActionOut(Schema):
    operation: OperationRef
    instance: InstanceOut


class ProtectionIn(InputSchema):
    termination_protection: bool


class ReverseDnsIn(InputSchema):
    name: str = Field(
        max_length=260,
        description="A full host name such as web-1.example.com (a trailing dot is fine); empty removes it.",
    )


class FirewallSetIn(InputSchema):
    firewall: int | None = Field(description="A firewall of the server's project, or null to detach it.")


class FirewallSetOut(Schema):
    operation: OperationRef | None = Field(description="The apply under way; null when nothing changed.")
    instance: InstanceOut


# --- keys, firewalls, volumes -----------------------------------------------------------------


class SshKeyIn(InputSchema):
    project: IdOrName
    public_key: str = Field(max_length=16384)
    name: str = Field("", max_length=80, description="Default: the key's comment.")


class SshKeyOut(Schema):
    id: int
    project: int
    name: str
    key_type: str
    bits: int
    fingerprint: str
    public_key: str
    created_at: datetime
    url: str


class SshKeyList(Schema):
    items: list[SshKeyOut]


class FirewallRuleIn(InputSchema):
    protocol: Literal["tcp", "udp", "icmp"] = "tcp"
    port_from: int | None = Field(None, **_bounds(minimum=PORT_MIN, maximum=PORT_MAX))
    port_to: int | None = Field(None, **_bounds(minimum=PORT_MIN, maximum=PORT_MAX))
    source: str = Field(max_length=100, description="CIDR, e.g. 203.0.113.7/32 or 0.0.0.0/0.")
    description: str = Field("", **_bounds(maxLength=DESCRIPTION_MAX_LENGTH))


class FirewallRuleOut(Schema):
    id: int
    protocol: str
    port_from: int | None
    port_to: int | None
    source: str
    description: str


class FirewallIn(InputSchema):
    project: IdOrName
    name: str = Field("", max_length=80)
    preset: str | None = Field(
        None,
        description="web (HTTP, HTTPS and SSH from anywhere) or ssh-my-ip (SSH from the calling address); empty: no rules.",
    )


class FirewallOut(Schema):
    id: int
    project: int
    name: str
    rules: list[FirewallRuleOut]
    servers: list[UUID]
    created_at: datetime
    url: str


class FirewallList(Schema):
    items: list[FirewallOut]


class VolumeIn(InputSchema):
    project: IdOrName
    name: str = Field(**_bounds(minLength=1, maxLength=VOLUME_NAME_MAX_LENGTH))
    zone: str
    size_gib: int = Field(**_bounds(minimum=VOLUME_MIN_GIB, maximum=VOLUME_MAX_GIB))


class VolumeOut(Schema):
    id: UUID
    project: int
    name: str
    zone: str
    size_gib: int
    status: Literal[
        "creating",
        "available",
        "attaching",
        "in_use",
        "detaching",
        "extending",
        "deleting",
        "deleted",
        "error",
    ] = Field(description="What the cloud confirmed, or the request under way (creating, attaching…).")
    attached_to: UUID | None
    device: str = Field(description="The device its server sees, e.g. /dev/vdb (empty until attached).")
    fault_message: str = Field(description="Why it is in error, in plain words.")
    operation: OperationRef | None = Field(
        description="The request this answer is about, or the volume's latest: poll it until it is finished."
    )
    created_at: datetime
    url: str


class VolumeList(Schema):
    items: list[VolumeOut]


class VolumeActionIn(InputSchema):
    action: Literal["attach", "detach", "extend"]
    instance: UUID | None = Field(None, strict=False, description="For attach: the server's id.")
    size_gib: int | None = Field(
        None,
        **_bounds(minimum=VOLUME_MIN_GIB, maximum=VOLUME_MAX_GIB),
        description="For extend: the new size, larger than the current one (volumes only grow).",
    )


# --- usage and budgets ------------------------------------------------------------------------


class UsageOut(Schema):
    project: int
    period: dict
    currency: str
    days: list[str]
    vcpu_hours: list[Decimal]
    ram_gib_hours: list[Decimal]
    storage_gib_hours: list[Decimal]
    costs_included: bool = Field(description="Costs need a token with billing access.")
    cost: list[Decimal] | None = None
    cost_by_meter: dict[str, list[Decimal]] | None = None
    totals: dict[str, Decimal | dict[str, Decimal]]


class BudgetIn(InputSchema):
    amount: Decimal = Field(ge=BUDGET_MIN_AMOUNT, le=BUDGET_MAX_AMOUNT, decimal_places=2, strict=False)
    guard: Literal["off", "warn", "approval", "block"] = "off"


class BudgetOut(Schema):
    project: int
    currency: str
    amount: Decimal | None
    guard: str | None
    spent: Decimal
    forecast: Decimal
    run_rate_hourly: Decimal
    percent_spent: Decimal | None
    level: str | None
    month: str


# --- snapshots, images and backups ------------------------------------------------------------


class SnapshotIn(InputSchema):
    project: IdOrName
    server: UUID | None = Field(None, strict=False, description="The server whose disk to keep (an image).")
    volume: UUID | None = Field(None, strict=False, description="Or the volume to keep.")
    name: str = Field("", **_bounds(maxLength=63), description="Empty: the source's name and the time.")


class SnapshotCopyIn(InputSchema):
    zone: str = Field(
        **_bounds(maxLength=24), description="The zone (of another region) to copy into, e.g. ams1-a."
    )
    name: str = Field("", **_bounds(maxLength=63), description="Empty: the original's name and the zone.")


class CopyTargetOut(Schema):
    zone: str
    region: str
    allowed: bool
    reason: str = Field(
        description="Why not (the residency policy's reason when it forbids the region); empty when allowed."
    )
    by_policy: bool = Field(description="The residency policy forbids the region.")


class CopyTargetList(Schema):
    price_monthly: Decimal = Field(description="What keeping the copy costs per month, in `currency`.")
    currency: str
    unavailable: str = Field(description="Why the image can't be copied at all now; empty when it can.")
    items: list[CopyTargetOut]


class RestoreIn(InputSchema):
    snapshot: UUID | None = Field(
        None, strict=False, description="The server snapshot or backup to restore the disk from."
    )
    image: int | None = Field(None, description="Or one of the project's own images (GET /images).")
    confirm_name: str = Field(
        **_bounds(maxLength=63), description="The server's name: everything written since is lost."
    )


class SnapshotOut(Schema):
    id: UUID
    project: int
    name: str
    kind: Literal["server", "volume", "backup"]
    zone: str
    region: str
    status: Literal["creating", "available", "deleting", "deleted", "error"]
    source_server: UUID | None
    source_volume: UUID | None
    size_gib: int
    image: int | None = Field(description="The image new servers launch from (server snapshots, backups).")
    copied_from: UUID | None = Field(description="For a copy in another region: the snapshot it copies.")
    price_monthly: Decimal = Field(description="What keeping it costs per month, in `currency`.")
    currency: str
    fault_message: str
    created_at: datetime
    url: str


class SnapshotList(Schema):
    items: list[SnapshotOut]


class ProjectImageOut(Schema):
    id: int
    name: str
    os_family: str
    version: str
    min_disk_gib: int
    project: int | None = Field(description="The project that owns it; null for the public catalog.")
    snapshot: UUID | None
    zones: list[str]


class ProjectImageList(Schema):
    items: list[ProjectImageOut]


class BackupScheduleIn(InputSchema):
    frequency: Literal["daily", "weekly"]
    hour: int = Field(description="0-23, UTC.")
    weekday: int | None = Field(None, description="0 = Monday … 6 = Sunday; weekly backups only.")
    keep: int = Field(description="1-30 backups kept; the oldest beyond go once a new one succeeded.")
    enabled: bool = True


class BackupScheduleOut(Schema):
    server: UUID
    frequency: str
    hour: int
    weekday: int | None
    keep: int
    enabled: bool
    next_run_at: datetime | None
    backups: list[UUID]
