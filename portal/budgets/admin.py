from django.contrib import admin

from portal.budgets.models import Budget, BudgetAlert, InstanceLease, NudgeDigest


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ["project", "amount", "guard", "updated_at"]
    list_select_related = ["project__organization"]
    raw_id_fields = ["project", "updated_by"]


@admin.register(BudgetAlert)
class BudgetAlertAdmin(admin.ModelAdmin):
    list_display = ["project", "month", "kind", "sent_at", "spent", "forecast", "amount"]
    list_filter = ["kind"]
    list_select_related = ["project"]
    readonly_fields = ["project", "month", "kind", "sent_at", "spent", "forecast", "amount"]


@admin.register(NudgeDigest)
class NudgeDigestAdmin(admin.ModelAdmin):
    list_display = ["project", "week", "sent_at", "monthly_saving"]
    list_select_related = ["project"]
    readonly_fields = ["project", "week", "sent_at", "instance_names", "monthly_saving"]


@admin.register(InstanceLease)
class InstanceLeaseAdmin(admin.ModelAdmin):
    list_display = ["instance", "stop_at", "reminded_at", "created_by"]
    list_select_related = ["instance", "created_by"]
    raw_id_fields = ["instance", "created_by"]
