from django.contrib import admin

from portal.residency.models import ResidencyPolicy


@admin.register(ResidencyPolicy)
class ResidencyPolicyAdmin(admin.ModelAdmin):
    """Read-only for operators: customers own their policies and every change is audited there."""

    list_display = ["organization", "project", "name", "updated_at", "updated_by"]
    search_fields = ["organization__name", "project__name", "name"]
    list_select_related = ["organization", "project", "updated_by"]
    filter_horizontal = ["jurisdictions", "regions", "certifications"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
