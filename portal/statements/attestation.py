"""Residency attestation: where every server, volume, snapshot, backup and project image was during
a period, and whether the policies in force at the time allowed it.

Where: the usage segments (every segment carries the resource's zone and its time range, and a
server's disk segment, a volume's or a snapshot's segment covers its whole existence in the cloud),
merged per resource and zone. Resources that existed in the period without any usage (a launch that
failed before the server ran, a snapshot whose size the cloud never gave) come from their rows,
placed in the zone they were created for, from their creation to their deletion; a snapshot that
never reached the cloud (a backup the policy refused) was nowhere and is not listed. A server
snapshot is also the image new servers boot from: one cloud object, one entry. An image an operator
uploaded for a project has no times: it is listed in each zone the cloud holds it in
(`backend_refs`) for the whole period — the conservative reading. When: each placement
interval is split wherever a policy that applies to its project changed (see
`policy_history`), and each piece is judged by `residency.placement` rules as they were then.
A resource is compliant when every piece of it was allowed; the attestation when every resource is.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

from django.db.models import Q
from django.utils import timezone

from portal.catalog.models import Image, Zone
from portal.compute.models import (
    Instance,
    InstanceStatus,
    Snapshot,
    SnapshotKind,
    SnapshotStatus,
    Volume,
    VolumeStatus,
)
from portal.metering.models import ResourceType
from portal.metering.rollup import segments_overlapping
from portal.residency.models import ResidencyPolicy
from portal.residency.placement import zones_for_decisions
from portal.residency.policy import describe
from portal.statements.documents import csv_text, iso, sha256_hex
from portal.statements.policy_history import PolicyChange, PolicyHistory, policy_history
from portal.tenancy.models import Organization, Project


class Source:
    USAGE = "usage"  # from usage segments
    RECORD = "record"  # from the resource's row: it existed without usage in the period
    CATALOG = "catalog"  # an image an operator uploaded: where the cloud holds it, no times known


# What a snapshot is, in the CSV's "Resource type" column and on the page.
SNAPSHOT_TYPES = {
    SnapshotKind.SERVER: "server_snapshot",
    SnapshotKind.VOLUME: "volume_snapshot",
    SnapshotKind.BACKUP: "backup",
}
IMAGE_TYPE = "image"
TYPE_LABELS = {SNAPSHOT_TYPES[kind]: kind.label for kind in SnapshotKind} | {IMAGE_TYPE: "Image"}


@dataclass(frozen=True)
class Placement:
    start: datetime
    end: datetime
    zone: Zone
    policy: str
    allowed: bool
    reasons: str


@dataclass
class ResourceHistory:
    resource_type: str
    resource_id: str
    name: str
    project_id: int
    project_name: str
    source: str
    placements: list[Placement] = field(default_factory=list)
    kind: str = ""  # for snapshots and images: a key of TYPE_LABELS
    is_image: bool = False  # a server snapshot or backup new servers boot from
    copied_from: str = ""  # for a copy in another region: "<name> in <zone>" of what it copies

    @property
    def compliant(self) -> bool:
        return all(p.allowed for p in self.placements)

    @property
    def type_code(self) -> str:
        return self.kind or self.resource_type

    @property
    def type_label(self) -> str:
        return TYPE_LABELS.get(self.kind) or ResourceType(self.resource_type).label

    @property
    def source_note(self) -> str:
        """Why the page can't show usage for it ("" when it comes from usage)."""
        if self.source == Source.CATALOG:
            return "provided by your operator: held in this zone, no times recorded, so shown for the whole period"
        if self.source != Source.RECORD:
            return ""
        if self.resource_type == ResourceType.SNAPSHOT:
            return "no usage recorded: zone and times from its record"
        return "no usage recorded (e.g. a failed launch): zone from its record"


@dataclass
class Attestation:
    organization: Organization
    project: Project | None
    start: datetime
    end: datetime  # exclusive, as asked
    as_of: datetime
    resources: list[ResourceHistory]
    history: PolicyHistory
    policy_at_end: list[tuple[str, str]]  # (scope, summary) at the end of the period
    warnings: list[str]

    @property
    def effective_end(self) -> datetime:
        return min(self.end, self.as_of)

    @property
    def is_final(self) -> bool:
        """The period is over: the same attestation, downloaded again, hashes the same."""
        return self.end <= self.as_of

    @property
    def compliant(self) -> bool:
        return all(r.compliant for r in self.resources)

    @property
    def noncompliant_count(self) -> int:
        return sum(not r.compliant for r in self.resources)

    @property
    def changes(self) -> list[PolicyChange]:
        return self.history.changes

    def csv_body(self) -> str:
        return csv_text(self._rows())

    @property
    def content_hash(self) -> str:
        return sha256_hex(self.csv_body())

    def _rows(self) -> list[list]:
        rows: list[list] = [
            ["Residency attestation", self.organization.name],
            ["Scope", f"project {self.project.name}" if self.project else "all projects"],
            ["Period start (UTC)", iso(self.start)],
            ["Period end (UTC, exclusive)", iso(self.end)],
            ["Final", "yes" if self.is_final else f"no: the period includes today, as of {iso(self.as_of)}"],
            ["Overall verdict", "compliant" if self.compliant else "NOT COMPLIANT"],
            ["Resources", len(self.resources), "not compliant", self.noncompliant_count],
        ]
        rows += [["Policy change", iso(c.at), c.scope, c.text] for c in self.changes]
        rows += [["Policy at period end", scope, summary] for scope, summary in self.policy_at_end]
        rows += [["Note", warning] for warning in self.warnings]
        rows.append([])
        rows.append(
            [
                "Project",
                "Resource type",
                "Resource id",
                "Resource name",
                "Zone",
                "Region",
                "Jurisdiction",
                "From (UTC)",
                "To (UTC)",
                "Policy in force",
                "Placement",
                "Reasons",
                "Resource verdict",
                "Source",
            ]
        )
        for resource in self.resources:
            for p in resource.placements:
                rows.append(
                    [
                        resource.project_name,
                        resource.type_code,
                        resource.resource_id,
                        resource.name,
                        p.zone.code,
                        p.zone.region.name,
                        p.zone.region.jurisdiction.name,
                        iso(p.start),
                        iso(p.end),
                        p.policy,
                        "allowed" if p.allowed else "NOT ALLOWED",
                        p.reasons,
                        "compliant" if resource.compliant else "NOT COMPLIANT",
                        resource.source,
                    ]
                )
        return rows


def current_policies(organization: Organization, project: Project | None) -> list[tuple[str, list[str]]]:
    """Today's policies in plain sentences (residency.policy.describe), for the page."""
    policies = (
        ResidencyPolicy.objects.filter(organization=organization)
        .select_related("project")
        .prefetch_related("jurisdictions", "regions", "certifications")
    )
    if project is not None:
        policies = policies.filter(Q(project__isnull=True) | Q(project=project))
    org_policy = next((p for p in policies if p.project_id is None), None)
    found = [
        (
            "Organization policy" + (f" '{org_policy.name}'" if org_policy and org_policy.name else ""),
            describe(org_policy),
        )
    ]
    for policy in sorted((p for p in policies if p.project_id is not None), key=lambda p: p.project.name):
        name = f" '{policy.name}'" if policy.name else ""
        found.append((f"Project {policy.project.name}: policy{name}", describe(policy)))
    if project is not None and len(found) == 1:
        found.append((f"Project {project.name}", ["No policy of its own: the organization's applies."]))
    return found


def attestation_build(
    *,
    organization: Organization,
    project: Project | None = None,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> Attestation:
    now = now or timezone.now()
    stop = min(end, now)
    scope = {"organization": organization} | ({"project": project} if project is not None else {})
    projects = [project] if project is not None else list(organization.projects.all())
    project_names = {p.pk: p.name for p in projects}

    resources, intervals = _from_usage(scope, start, stop, now)
    _name_and_add_records(resources, intervals, scope, start, stop)
    _add_uploaded_images(resources, intervals, projects, start, stop)
    history = policy_history(organization, start=start, end=stop, project_names=project_names)
    zones = zones_for_decisions().in_bulk(
        {zone_id for spans in intervals.values() for zone_id, _, _ in spans}
    )

    for resource_id, resource in resources.items():
        resource.project_name = project_names.get(resource.project_id, "")
        change_times = history.change_times(resource.project_id)
        for zone_id, span_start, span_end in intervals[resource_id]:
            cuts = [t for t in change_times if span_start < t < span_end]
            bounds = [span_start, *cuts, span_end]
            for piece_start, piece_end in pairwise(bounds):
                rules, text = history.rules_at(resource.project_id, piece_start)
                decision = rules.decide(zones[zone_id])
                resource.placements.append(
                    Placement(piece_start, piece_end, zones[zone_id], text, decision.allowed, decision.reason)
                )

    at_end = stop if stop > start else start
    policy_at_end = [("organization", history.state_at(None, at_end).summary("organization"))]
    for p in projects:
        state = history.state_at(p.pk, at_end)
        if state.restricts or p.pk in history.timelines:
            policy_at_end.append((f"project {p.name}", state.summary("project")))
    ordered = sorted(
        resources.values(), key=lambda r: (r.project_name, r.resource_type, r.name, r.resource_id)
    )
    return Attestation(
        organization=organization,
        project=project,
        start=start,
        end=end,
        as_of=now,
        resources=ordered,
        history=history,
        policy_at_end=policy_at_end,
        warnings=history.warnings + history.unknown_name_warnings(),
    )


def _from_usage(scope: dict, start: datetime, stop: datetime, now: datetime):
    """Resources seen in the period's segments, and their (zone, from, to) spans merged per zone."""
    resources: dict[str, ResourceHistory] = {}
    raw: dict[str, list] = defaultdict(list)
    rows = segments_overlapping(start, stop, **scope).values_list(
        "resource_id", "resource_type", "resource_name", "project_id", "zone_id", "started_at", "ended_at"
    )
    for resource_id, rtype, name, project_id, zone_id, started, ended in rows.iterator(chunk_size=2000):
        key = str(resource_id)
        if key not in resources:
            resources[key] = ResourceHistory(rtype, key, name, project_id, "", Source.USAGE)
        raw[key].append((zone_id, max(started, start), min(ended or now, stop)))
    return resources, {key: _merge(spans) for key, spans in raw.items()}


def _merge(spans: list) -> list:
    """Overlapping or touching spans in the same zone become one; the result is ordered by time."""
    merged: list[list] = []
    for zone_id, lo, hi in sorted(spans, key=lambda s: (s[0], s[1])):
        if merged and merged[-1][0] == zone_id and lo <= merged[-1][2]:
            merged[-1][2] = max(merged[-1][2], hi)
        else:
            merged.append([zone_id, lo, hi])
    return sorted((tuple(s) for s in merged if s[2] > s[1]), key=lambda s: (s[1], s[0]))


def _name_and_add_records(resources: dict, intervals: dict, scope: dict, start: datetime, stop: datetime):
    """Current names (and what a snapshot is) from the rows; servers, volumes and snapshots that
    existed without any usage are added."""
    where = {f"project__{k}" if k == "organization" else k: v for k, v in scope.items()}
    existed = Q(created_at__lt=stop)
    kinds = (
        (
            ResourceType.INSTANCE,
            Instance.objects.filter(**where),
            existed & (Q(terminated_at__gt=start) | Q(terminated_at__isnull=True)),
            "terminated_at",
            Q(status=InstanceStatus.TERMINATED, terminated_at__isnull=True),
        ),
        (
            ResourceType.VOLUME,
            Volume.objects.filter(**where),
            existed & (Q(deleted_at__gt=start) | Q(deleted_at__isnull=True)),
            "deleted_at",
            Q(status=VolumeStatus.DELETED, deleted_at__isnull=True),
        ),
        (
            ResourceType.SNAPSHOT,
            Snapshot.objects.filter(**where),
            existed & (Q(deleted_at__gt=start) | Q(deleted_at__isnull=True)),
            "deleted_at",
            # A failure before the cloud had it (no id of the cloud's): it was never anywhere.
            Q(status=SnapshotStatus.DELETED, deleted_at__isnull=True)
            | Q(status=SnapshotStatus.ERROR, backend_id=""),
        ),
    )
    for rtype, queryset, alive, gone_field, unknown_end in kinds:
        snapshots = rtype == ResourceType.SNAPSHOT
        details = ("kind", "image_id", "copied_from__name", "copied_from__zone__code") if snapshots else ()
        seen = [r.resource_id for r in resources.values() if r.resource_type == rtype]
        for row in queryset.filter(pk__in=seen).values("pk", "name", *details):
            resource = resources[str(row["pk"])]
            resource.name = row["name"]
            if snapshots:
                _describe_snapshot(resource, row)
        never_used = queryset.filter(alive).exclude(pk__in=seen).exclude(unknown_end)
        for row in never_used.values(
            "pk", "name", "project_id", "zone_id", "created_at", gone_field, *details
        ):
            span = (row["zone_id"], max(row["created_at"], start), min(row[gone_field] or stop, stop))
            if span[2] > span[1]:
                key = str(row["pk"])
                resources[key] = ResourceHistory(
                    rtype, key, row["name"], row["project_id"], "", Source.RECORD
                )
                if snapshots:
                    _describe_snapshot(resources[key], row)
                intervals[key] = [span]


def _describe_snapshot(resource: ResourceHistory, row: dict) -> None:
    resource.kind = SNAPSHOT_TYPES.get(row["kind"], "")
    resource.is_image = row["image_id"] is not None
    if row["copied_from__name"]:
        resource.copied_from = f"{row['copied_from__name']} in {row['copied_from__zone__code']}"


def _add_uploaded_images(resources: dict, intervals: dict, projects: list, start: datetime, stop: datetime):
    """Images an operator uploaded for the projects (a snapshot's image is listed as the snapshot):
    in each zone the cloud holds them in, or, without `backend_refs`, each zone they are offered in.
    Their rows keep no times, so each is placed for the whole period, active or not."""
    if stop <= start:
        return
    images = (
        Image.objects.filter(project__in=projects, snapshot__isnull=True)
        .prefetch_related("zones")
        .order_by("pk")
    )
    images = list(images)
    codes = {code for image in images if isinstance(image.backend_refs, dict) for code in image.backend_refs}
    zone_ids = dict(Zone.objects.filter(code__in=codes).values_list("code", "pk"))
    for image in images:
        refs = image.backend_refs if isinstance(image.backend_refs, dict) else {}
        held = sorted(
            {zone_ids[code] for code in refs if code in zone_ids} or {z.pk for z in image.zones.all()}
        )
        if not held:
            continue
        key = f"image-{image.pk}"
        resources[key] = ResourceHistory(
            ResourceType.SNAPSHOT, key, image.name, image.project_id, "", Source.CATALOG, kind=IMAGE_TYPE
        )
        intervals[key] = [(zone_id, start, stop) for zone_id in held]
