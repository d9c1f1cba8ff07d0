from django.urls import path

from portal.audit.views import audit_log
from portal.tenancy import views

app_name = "tenancy"

urlpatterns = [
    path("orgs/new/", views.organization_create, name="org_create"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("o/<slug:org_slug>/", views.org_dashboard, name="org_dashboard"),
    path("o/<slug:org_slug>/settings/", views.org_settings, name="org_settings"),
    path("o/<slug:org_slug>/leave/", views.org_leave, name="org_leave"),
    path("o/<slug:org_slug>/members/", views.members, name="members"),
    path("o/<slug:org_slug>/members/invite/", views.invitation_create, name="invitation_create"),
    path("o/<slug:org_slug>/members/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("o/<slug:org_slug>/members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path(
        "o/<slug:org_slug>/invitations/<int:invitation_id>/resend/",
        views.invitation_resend,
        name="invitation_resend",
    ),
    path(
        "o/<slug:org_slug>/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("o/<slug:org_slug>/audit/", audit_log, name="audit_log"),
    path("o/<slug:org_slug>/projects/new/", views.project_create, name="project_create"),
    path("o/<slug:org_slug>/p/<slug:project_slug>/", views.project_dashboard, name="project_dashboard"),
    path(
        "o/<slug:org_slug>/p/<slug:project_slug>/settings/", views.project_settings, name="project_settings"
    ),
    path("o/<slug:org_slug>/p/<slug:project_slug>/delete/", views.project_delete, name="project_delete"),
]
