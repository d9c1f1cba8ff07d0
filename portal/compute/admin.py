from __future__ import annotations

import uuid
from dataclasses import asdict

from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone

from portal.compute import reverse_dns, runner
from portal.compute.models import (
    BackendOrphan,
    FirewallRule,
    FirewallRuleSet,
    Instance,
    InstanceStatus,
    Network,
    NetworkPort,
    Operation,
    SimulatedKnobs,
    SimulatedNetwork,
    SimulatedServer,
    SimulatedVolume,
    Snapshot,
    SshKey,
    Volume,
)
from portal.compute.models.operations import operation_deadline
from portal.compute.tasks import operations_enqueue


class OperationInline(admin.TabularInline):
    model = Operation
    extra = 0
    can_delete = False
    fields = ["action", "state", "created_at", "finished_at", "attempts", "error_message"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "status",
        "project",
        "organization",
        "zone",
        "flavor",
        "public_address",
        "created_at",
    ]
    list_filter = ["status", "zone__region", "zone", "flavor", "image__os_family", "created_at"]
    search_fields = [
        "name",
        "pk",
        "backend_id",
        "project__name",
        "project__organization__name",
        "created_by__email",
    ]
    list_select_related = ["project__organization", "zone", "flavor"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "id",
        "project",
        "zone",
        "flavor",
        "image",
        "root_disk_gib",
        "status",
        "backend_id",
        "addresses",
        "batch",
        "created_by",
        "created_at",
        "updated_at",
        "running_since",
        "terminated_at",
        "fault_message",
        "user_data",
        "reverse_dns",
    ]
    exclude = ["ssh_keys"]
    inlines = [OperationInline]
    actions = ["export_reverse_dns_json", "export_reverse_dns_zone"]

    @admin.action(description="Export the reverse DNS of the selected servers (JSON)")
    def export_reverse_dns_json(self, request, queryset) -> HttpResponse:
        records = reverse_dns.ptr_records(_with_reverse_dns(queryset))
        response = JsonResponse(
            {"records": [asdict(record) for record in records]}, json_dumps_params={"indent": 2}
        )
        response["Content-Disposition"] = 'attachment; filename="reverse-dns.json"'
        return response

    @admin.action(description="Export the reverse DNS of the selected servers (zone file)")
    def export_reverse_dns_zone(self, request, queryset) -> HttpResponse:
        records = reverse_dns.ptr_records(_with_reverse_dns(queryset))
        response = HttpResponse(
            reverse_dns.zone_file(records, generated_at=timezone.now()),
            content_type="text/dns; charset=utf-8",
        )
        response["Content-Disposition"] = 'attachment; filename="reverse-dns.zone"'
        return response

    @admin.display(ordering="project__organization__name")
    def organization(self, obj: Instance):
        return obj.project.organization

    def has_add_permission(self, request) -> bool:
        return False  # servers are launched through the portal, with its checks


def _with_reverse_dns(queryset):
    """The servers of `queryset` that have a name and still exist, with what a record names."""
    return (
        queryset.select_related(None)
        .exclude(reverse_dns="")
        .exclude(status=InstanceStatus.TERMINATED)
        .select_related("project__organization", "zone")
        .only("reverse_dns", "addresses", "project__slug", "project__organization__slug", "zone__code")
        .order_by()
    )


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "action", "state", "attempts", "created_at", "finished_at", "error_message"]
    list_filter = ["state", "action", "created_at"]
    search_fields = [
        "pk",
        "instance__name",
        "instance__pk",
        "volume__name",
        "volume__pk",
        "network__name",
        "network__pk",
        "error_message",
        "error_detail",
    ]
    list_select_related = ["instance", "volume", "network"]
    readonly_fields = [f.name for f in Operation._meta.fields]
    actions = ["retry", "mark_failed"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Nudge the selected unfinished operations (queue their next step now)")
    def retry(self, request, queryset) -> None:
        """For work that seems stuck (a lost message). Finished operations are left alone: a failed
        launch is retried by launching again, which checks quota and placement afresh."""
        steps = []
        with transaction.atomic():
            for op in (
                queryset.select_for_update(of=("self",))
                .select_related("instance__zone", "volume__zone", "network__zone")
                .active()
                .order_by("pk")  # the order every multi-row lock on operations takes
            ):
                op.step_token = uuid.uuid4().hex
                op.attempts = 0
                op.deadline = operation_deadline()
                op.save(update_fields=["step_token", "attempts", "deadline"])
                steps.append((op.pk, op.step_token, op.zone.backend))
            if steps:
                transaction.on_commit(lambda: operations_enqueue(steps), robust=True)
        self.message_user(request, f"{len(steps)} operation(s) queued again.", messages.SUCCESS)

    @admin.action(description="Mark the selected operations failed")
    def mark_failed(self, request, queryset) -> None:
        failed = 0
        for op in queryset.active().select_related("instance__zone", "volume__zone", "network__zone"):
            runner.fail_operation(
                op, "Stopped by an operator. Please try again.", f"marked failed by {request.user.email}"
            )
            failed += 1
        self.message_user(request, f"{failed} operation(s) marked failed.", messages.SUCCESS)


@admin.register(Volume)
class VolumeAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "zone", "size_gib", "status", "attached_to", "device", "created_at"]
    list_filter = ["status", "zone"]
    search_fields = ["name", "backend_id", "project__name", "project__organization__name"]
    list_select_related = ["project", "zone", "attached_to"]
    readonly_fields = [
        "project",
        "zone",
        "backend_id",
        "attached_to",
        "device",
        "created_by",
        "created_at",
        "deleted_at",
    ]
    inlines = [OperationInline]


@admin.register(Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "project", "zone", "status", "size_gib", "created_at"]
    list_filter = ["kind", "status", "zone"]
    search_fields = ["name", "backend_id", "project__name", "project__organization__name"]
    list_select_related = ["project", "zone"]
    readonly_fields = [
        "project",
        "zone",
        "kind",
        "source_instance",
        "source_volume",
        "schedule",
        "backend_id",
        "image_ref",
        "image",
        "created_by",
        "created_at",
        "deleted_at",
    ]
    inlines = [OperationInline]


class NetworkPortInline(admin.TabularInline):
    model = NetworkPort
    extra = 0
    can_delete = False
    fields = ["instance", "status", "address", "fault_message", "created_at", "updated_at"]
    readonly_fields = fields
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Network)
class NetworkAdmin(admin.ModelAdmin):
    """Read-mostly, like volumes: the customer's network changes only through operations."""

    list_display = ["name", "cidr", "project", "zone", "status", "created_at"]
    list_filter = ["status", "zone"]
    search_fields = ["name", "cidr", "backend_id", "project__name", "project__organization__name"]
    list_select_related = ["project", "zone"]
    readonly_fields = [
        "project",
        "zone",
        "cidr",
        "backend_id",
        "created_by",
        "created_at",
        "updated_at",
        "deleted_at",
    ]
    inlines = [NetworkPortInline, OperationInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(SshKey)
class SshKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "key_type", "bits", "fingerprint", "created_at"]
    list_filter = ["key_type"]
    search_fields = ["name", "fingerprint", "project__name"]
    readonly_fields = ["project", "public_key", "key_type", "bits", "fingerprint", "created_by", "created_at"]


class FirewallRuleInline(admin.TabularInline):
    model = FirewallRule
    extra = 0


@admin.register(FirewallRuleSet)
class FirewallRuleSetAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_at"]
    search_fields = ["name", "project__name"]
    readonly_fields = ["project", "created_by", "created_at"]
    inlines = [FirewallRuleInline]


@admin.register(SimulatedKnobs)
class SimulatedKnobsAdmin(admin.ModelAdmin):
    """Fault injection for the simulated cloud: takes effect on the next backend call."""

    list_display = [
        "__str__",
        "transient_error_rate",
        "slow_call_seconds",
        "boot_seconds",
        "action_seconds",
        "fail_marker",
    ]

    def has_add_permission(self, request) -> bool:
        return not SimulatedKnobs.objects.exists()

    def changelist_view(self, request, extra_context=None):
        # An empty list read as "no settings", while the cloud runs on the environment's
        # defaults: say what is in effect and how to change it.
        if not SimulatedKnobs.objects.exists():
            knobs = SimulatedKnobs.from_settings()
            messages.info(
                request,
                "Nothing is saved here yet, so the simulated cloud runs on the defaults from the "
                f"environment: boot {knobs.boot_seconds:g} s, other actions {knobs.action_seconds:g} s, "
                f"transient error rate {knobs.transient_error_rate:g}, slow calls "
                f'+{knobs.slow_call_seconds:g} s, fail marker "{knobs.fail_marker}". '
                "Add the settings (they start from these values) to change them live.",
            )
        return super().changelist_view(request, extra_context)

    def get_changeform_initial_data(self, request) -> dict:
        knobs = SimulatedKnobs.from_settings()
        return {field: getattr(knobs, field) for field in self.list_display[1:]}


@admin.register(SimulatedServer)
class SimulatedServerAdmin(admin.ModelAdmin):
    list_display = ["name", "backend_id", "zone_code", "state", "address", "deleted", "created_at"]
    list_filter = ["state", "zone_code", "deleted"]
    search_fields = ["name", "backend_id", "idempotency_key"]
    readonly_fields = [f.name for f in SimulatedServer._meta.fields]


@admin.register(SimulatedVolume)
class SimulatedVolumeAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "backend_id",
        "zone_code",
        "state",
        "size_gib",
        "attached_to",
        "device",
        "deleted",
    ]
    list_filter = ["state", "zone_code", "deleted"]
    search_fields = ["name", "backend_id", "idempotency_key"]
    readonly_fields = [f.name for f in SimulatedVolume._meta.fields]


@admin.register(SimulatedNetwork)
class SimulatedNetworkAdmin(admin.ModelAdmin):
    list_display = ["name", "backend_id", "zone_code", "cidr", "state", "deleted", "created_at"]
    list_filter = ["state", "zone_code", "deleted"]
    search_fields = ["name", "backend_id", "idempotency_key"]
    readonly_fields = [f.name for f in SimulatedNetwork._meta.fields]


@admin.register(BackendOrphan)
class BackendOrphanAdmin(admin.ModelAdmin):
    list_display = [
        "backend_id",
        "kind",
        "backend",
        "zone_code",
        "name",
        "idempotency_key",
        "first_seen_at",
        "resolved",
    ]
    list_filter = ["resolved", "kind", "backend", "zone_code"]
    list_editable = ["resolved"]
    search_fields = ["backend_id", "name", "idempotency_key"]
