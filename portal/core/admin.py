from django.contrib import admin, messages
from django.utils import timezone

from portal.core.models import OutboxMessage


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    """Outgoing e-mail: what was sent, what is waiting to be tried again and why."""

    list_display = ["subject", "recipients", "created_at", "sent_at", "attempts", "next_attempt_at"]
    list_filter = [("sent_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["subject", "to"]
    readonly_fields = [f.name for f in OutboxMessage._meta.fields]
    actions = ["try_again_now"]

    @admin.display(description="To")
    def recipients(self, obj: OutboxMessage) -> str:
        return ", ".join(obj.to)

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Try the selected unsent messages again now")
    def try_again_now(self, request, queryset) -> None:
        count = queryset.filter(sent_at=None).update(next_attempt_at=timezone.now(), attempts=0)
        self.message_user(request, f"{count} message(s) will be tried within a minute.", messages.SUCCESS)
