from django.urls import path

from portal.statements import views

app_name = "statements"

urlpatterns = [
    path("o/<slug:org_slug>/statements/", views.statement_list, name="statement_list"),
    path(
        "o/<slug:org_slug>/statements/<int:year>-<int:month>/",
        views.statement_detail,
        name="statement_detail",
    ),
    path(
        "o/<slug:org_slug>/statements/<int:year>-<int:month>/statement.csv",
        views.statement_csv,
        name="statement_csv",
    ),
    path("o/<slug:org_slug>/attestation/", views.org_attestation, name="org_attestation"),
    path(
        "o/<slug:org_slug>/p/<slug:project_slug>/attestation/",
        views.project_attestation,
        name="project_attestation",
    ),
]
