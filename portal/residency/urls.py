from django.urls import path

from portal.residency import views

app_name = "residency"

urlpatterns = [
    path("o/<slug:org_slug>/residency/", views.org_residency, name="org_residency"),
    path(
        "o/<slug:org_slug>/p/<slug:project_slug>/residency/",
        views.project_residency,
        name="project_residency",
    ),
    path(
        "o/<slug:org_slug>/p/<slug:project_slug>/default-zone/",
        views.project_default_zone,
        name="project_default_zone",
    ),
]
