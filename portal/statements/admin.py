from django.contrib import admin

from portal.statements.models import Statement, StatementLine


class StatementLineInline(admin.TabularInline):
    model = StatementLine
    fields = ["project_name", "meter", "quantity_hours", "cost"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Statement)
class StatementAdmin(admin.ModelAdmin):
    """Read-only: statements are written by the close task and never change."""

    list_display = ["organization", "month", "status", "total", "currency", "closed_at"]
    list_filter = ["status", "month"]
    search_fields = ["organization__name", "organization__slug"]
    list_select_related = ["organization"]
    readonly_fields = [
        "organization",
        "organization_name",
        "month",
        "status",
        "closed_at",
        "total",
        "currency",
        "content_hash",
    ]
    inlines = [StatementLineInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
