from django.contrib import admin
from django.utils import timezone

from portal.api.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "display_prefix",
        "user",
        "organization",
        "project",
        "scope",
        "billing",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["scope", "billing"]
    list_select_related = ["user", "organization", "project"]
    search_fields = ["name", "display_prefix", "user__email", "organization__name"]
    # Tokens are created by their owners on the API tokens page; operators can only revoke them.
    readonly_fields = [f.name for f in ApiToken._meta.fields]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens now")
    def revoke(self, request, queryset) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_by=request.user
        )
        self.message_user(request, f"{count} token(s) revoked.")
