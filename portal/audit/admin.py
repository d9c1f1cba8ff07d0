from django.contrib import admin

from portal.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "action",
        "actor_email",
        "organization",
        "project",
        "target_repr",
        "ip_address",
    ]
    list_filter = ["action", "created_at"]
    search_fields = ["actor_email", "target_repr", "organization__name", "project__name"]
    date_hierarchy = "created_at"
    list_select_related = ["organization", "project"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
