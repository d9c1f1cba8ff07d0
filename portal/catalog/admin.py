from django.contrib import admin, messages
from django.db import transaction
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from portal.catalog.models import Certification, Flavor, Image, Jurisdiction, Region, Zone
from portal.compute.backends import get_backend
from portal.metering.segments import reprice


@admin.register(Jurisdiction)
class JurisdictionAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "legal_framework"]
    search_fields = ["name", "code", "legal_framework"]


@admin.register(Certification)
class CertificationAdmin(admin.ModelAdmin):
    list_display = ["name", "code"]
    search_fields = ["name", "code"]


class ZoneInline(admin.TabularInline):
    model = Zone
    extra = 0
    fields = ["code", "status", "backend", "free_vcpus", "free_ram_gib", "capacity_updated_at"]
    readonly_fields = ["capacity_updated_at"]
    show_change_link = True


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "city", "country", "jurisdiction", "is_active"]
    list_filter = ["jurisdiction", "is_active", "certifications"]
    search_fields = ["name", "code", "city", "country"]
    list_select_related = ["jurisdiction"]
    filter_horizontal = ["certifications"]
    inlines = [ZoneInline]


@admin.register(Zone)
class ZoneAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "region",
        "status",
        "backend",
        "backend_health",
        "free_vcpus",
        "free_ram_gib",
        "capacity_updated_at",
    ]
    list_filter = ["status", "backend", "region__jurisdiction", "region"]
    list_editable = ["status"]
    search_fields = ["code", "region__name", "region__city"]
    list_select_related = ["region"]
    readonly_fields = ["backend_health", "backend_error", "backend_checked_at", "capacity_updated_at"]
    actions = ["check_backend"]

    class Media:
        css = {"all": ["css/admin-zones.css"]}

    @admin.display(description="backend health")
    def backend_health(self, zone: Zone) -> str:
        """As the reconciler (every minute or so) or the "Check backend" action last found it."""
        if zone.backend_checked_at is None:
            return "not checked yet"
        ago = timesince(zone.backend_checked_at)
        if zone.backend_error:
            # The reason itself, so that "check auth_url" is read at a glance; the whole of it on hover.
            reason = zone.backend_error.splitlines()[0]
            if len(reason) > 240:
                reason = reason[:239] + "…"
            return format_html('<span title="{}">✗ {} ({} ago)</span>', zone.backend_error, reason, ago)
        return f"✓ answering ({ago} ago)"

    @admin.action(description="Check backend now (connect and read capacity)")
    def check_backend(self, request, queryset) -> None:
        for zone in queryset:
            now = timezone.now()
            try:
                summary = get_backend(zone.backend).check_health(zone.code)
            except Exception as error:  # shown to the operator, whatever the backend raised
                detail = getattr(error, "detail", "") or f"{type(error).__name__}: {error}"
                Zone.objects.filter(pk=zone.pk).update(backend_checked_at=now, backend_error=detail[:2000])
                self.message_user(request, f"{zone.code} ({zone.backend}): {detail}", messages.ERROR)
            else:
                Zone.objects.filter(pk=zone.pk).update(backend_checked_at=now, backend_error="")
                self.message_user(request, f"{zone.code} ({zone.backend}): {summary}", messages.SUCCESS)


class RepricingAdmin(admin.ModelAdmin):
    """A price change takes effect now: running usage is split at this moment (see metering)."""

    reprice_field = ""

    @transaction.atomic
    def save_model(self, request, obj, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and self.reprice_field in form.changed_data:
            reprice(**{self.reprice_kwarg: obj})


@admin.register(Flavor)
class FlavorAdmin(RepricingAdmin):
    reprice_field, reprice_kwarg = "price_hourly", "flavor"
    list_display = ["code", "name", "vcpus", "ram_gib", "root_disk_gib", "price_hourly", "is_active"]
    list_filter = ["is_active", "zones__region"]
    list_editable = ["price_hourly", "is_active"]
    search_fields = ["code", "name"]
    filter_horizontal = ["zones"]


@admin.register(Image)
class ImageAdmin(RepricingAdmin):
    reprice_field, reprice_kwarg = "license_price_hourly", "image"
    list_display = [
        "name",
        "os_family",
        "version",
        "project",
        "min_disk_gib",
        "license_price_hourly",
        "is_active",
    ]
    list_filter = ["os_family", "is_active", ("project", admin.EmptyFieldListFilter)]
    list_editable = ["is_active"]
    search_fields = ["name", "version", "project__name", "project__organization__name"]
    filter_horizontal = ["zones"]
    autocomplete_fields = ["project"]
    # An image uploaded for one customer: set its project, the zones that hold it, and the cloud's
    # image id in each of those zones (backend_refs); only that project sees it.
    fieldsets = [
        (
            None,
            {"fields": ["name", "os_family", "version", "min_disk_gib", "license_price_hourly", "is_active"]},
        ),
        ("Where", {"fields": ["zones"]}),
        (
            "A customer's own image",
            {
                "fields": ["project", "backend_refs"],
                "description": "Leave the project empty for the public catalog.",
            },
        ),
    ]

    def save_related(self, request, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        image = form.instance
        if image.project_id:
            zones = set(image.zones.values_list("code", flat=True))
            missing = sorted(zones - set(image.backend_refs or {}))
            if missing:
                self.message_user(
                    request,
                    f"{image.name}: no backend image id for {', '.join(missing)}; servers there boot "
                    "the image the backend finds by name.",
                    messages.WARNING,
                )
