"""Address pools in admin: what each pool holds and has left, and who holds which address."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.utils import timezone

from portal.compute.services.launch_addresses import zone_takes_pool_addresses
from portal.ipam.models import AddressAllocation, AddressPool, ExhaustionAlert


@admin.register(AddressPool)
class AddressPoolAdmin(admin.ModelAdmin):
    list_display = [
        "cidr",
        "zone",
        "family",
        "gateway",
        "is_active",
        "held",
        "resting",
        "free",
        "quarantine_minutes",
    ]
    list_filter = ["zone", "family", "is_active"]
    list_select_related = ["zone"]
    search_fields = ["cidr", "zone__code"]
    fields = [
        "zone",
        "family",
        "cidr",
        "gateway",
        "reserved",
        "quarantine_minutes",
        "is_active",
        "used_by_cloud",
    ]
    readonly_fields = ["used_by_cloud"]

    def get_queryset(self, request):
        # Two counts in the list's one query; the free count is arithmetic on the pool's fields.
        now = timezone.now()
        return (
            super()
            .get_queryset(request)
            .annotate(
                held_count=Count("allocations", filter=Q(allocations__released_at=None)),
                resting_count=Count("allocations", filter=Q(allocations__quarantined_until__gt=now)),
            )
        )

    @admin.display(description="held", ordering="held_count")
    def held(self, pool: AddressPool) -> int:
        return pool.held_count

    @admin.display(description="in quarantine", ordering="resting_count")
    def resting(self, pool: AddressPool) -> int:
        return pool.resting_count

    @admin.display(description="free")
    def free(self, pool: AddressPool) -> int:
        return max(0, pool.usable_count() - pool.held_count - pool.resting_count)

    @admin.display(description="used by the cloud")
    def used_by_cloud(self, pool: AddressPool) -> str:
        """Whether launches in the zone take this pool's addresses (asked of the zone's backend on
        this page only: the list would ask once per row)."""
        if not pool.zone_id:
            return "—"
        if zone_takes_pool_addresses(pool.zone):
            return f"Yes: servers launched in {pool.zone.code} get their addresses from its pools."
        return (
            f"No: the cloud of {pool.zone.code} ({pool.zone.backend}) picks its own addresses, "
            "so this pool is not used (docs/ipam.md says which clouds take them)."
        )


class AllocationState(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("held", "Held by a server"), ("resting", "In quarantine"), ("returned", "Returned")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "held":
            return queryset.filter(released_at=None)
        if self.value() == "resting":
            return queryset.filter(quarantined_until__gt=now)
        if self.value() == "returned":
            return queryset.exclude(released_at=None).exclude(quarantined_until__gt=now)
        return queryset


@admin.register(AddressAllocation)
class AddressAllocationAdmin(admin.ModelAdmin):
    """Read-only: addresses are handed out by launches and returned by terminations, never here."""

    list_display = [
        "address",
        "pool",
        "zone",
        "state",
        "server",
        "project",
        "organization",
        "allocated_at",
        "released_at",
        "quarantined_until",
    ]
    list_filter = ["pool__zone", "family", AllocationState, "pool"]
    list_select_related = ["pool__zone", "instance__project__organization"]
    search_fields = ["address", "holder_name", "instance__name", "instance__project__name"]
    date_hierarchy = "allocated_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="zone", ordering="pool__zone__code")
    def zone(self, allocation: AddressAllocation) -> str:
        return allocation.pool.zone.code

    @admin.display(description="state")
    def state(self, allocation: AddressAllocation) -> str:
        if allocation.released_at is None:
            return "held"
        if allocation.quarantined_until and allocation.quarantined_until > timezone.now():
            return "in quarantine"
        return "returned"

    @admin.display(description="server", ordering="holder_name")
    def server(self, allocation: AddressAllocation) -> str:
        return allocation.instance.name if allocation.instance else allocation.holder_name

    @admin.display(description="project")
    def project(self, allocation: AddressAllocation) -> str:
        return allocation.instance.project.name if allocation.instance else ""

    @admin.display(description="organization")
    def organization(self, allocation: AddressAllocation) -> str:
        return allocation.instance.project.organization.name if allocation.instance else ""


@admin.register(ExhaustionAlert)
class ExhaustionAlertAdmin(admin.ModelAdmin):
    list_display = ["__str__", "zone", "family", "refusals", "first_at", "last_at", "resolved_at"]
    list_filter = ["zone", "family", "resolved_at"]
    readonly_fields = ["zone", "family", "refusals", "first_at", "last_at", "resolved_at"]
    actions = ["mark_resolved"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Mark resolved (the next refusal opens a new alert)")
    def mark_resolved(self, request, queryset) -> None:
        done = queryset.filter(resolved_at=None).update(resolved_at=timezone.now())
        self.message_user(request, f"{done} alert(s) resolved.", messages.SUCCESS)
