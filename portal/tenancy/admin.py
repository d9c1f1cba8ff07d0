from django.contrib import admin
from django.db import transaction

from portal.audit.models import AuditAction
from portal.audit.services import audit_record, diff_fields
from portal.tenancy.models import Invitation, Membership, Organization, Project


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]


class ProjectInline(admin.TabularInline):
    model = Project
    extra = 0
    fields = ["name", "slug", *Project.QUOTA_FIELDS]
    readonly_fields = ["name", "slug", *Project.QUOTA_FIELDS]
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "member_count", "project_count", "created_at"]
    search_fields = ["name", "slug", "memberships__user__email"]
    list_filter = ["created_at"]
    readonly_fields = ["created_at", "created_by"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline, ProjectInline]

    @admin.display(description="members")
    def member_count(self, obj: Organization) -> int:
        return obj.memberships.count()

    @admin.display(description="projects")
    def project_count(self, obj: Organization) -> int:
        return obj.projects.count()


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "slug", *Project.QUOTA_FIELDS, "created_at"]
    list_filter = ["created_at"]
    search_fields = ["name", "slug", "organization__name"]
    list_select_related = ["organization"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["created_at", "created_by"]
    fieldsets = [
        (None, {"fields": ["organization", "name", "slug", "description", "created_at", "created_by"]}),
        ("Quotas", {"fields": Project.QUOTA_FIELDS, "description": "What this project may use at most."}),
    ]

    @transaction.atomic
    def save_model(self, request, obj: Project, form, change: bool) -> None:
        before = Project.objects.select_for_update().get(pk=obj.pk) if change else None
        super().save_model(request, obj, form, change)
        if before is not None:
            changes = diff_fields(before, obj, Project.QUOTA_FIELDS)
            if changes:
                audit_record(
                    action=AuditAction.QUOTA_CHANGED,
                    organization=obj.organization,
                    project=obj,
                    target=obj,
                    changes=changes,
                    request=request,
                )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "organization__name"]
    autocomplete_fields = ["user", "organization"]
    list_select_related = ["user", "organization"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "organization", "role", "status", "sent_at", "expires_at", "invited_by"]
    list_filter = ["status", "role"]
    search_fields = ["email", "organization__name"]
    list_select_related = ["organization", "invited_by"]
    readonly_fields = ["token_hash", "created_at", "sent_at", "accepted_by", "accepted_at", "invited_by"]

    def has_add_permission(self, request) -> bool:
        # Invitations carry a secret that only the e-mail holds: send them from the portal.
        return False
