from django.urls import path

from portal.metering import views

app_name = "metering"

ORG = "o/<slug:org_slug>/"
P = ORG + "p/<slug:project_slug>/"

urlpatterns = [
    path(ORG + "usage/", views.org_usage, name="org_usage"),
    path(ORG + "usage.json", views.org_usage_json, name="org_usage_json"),
    path(ORG + "usage.csv", views.org_usage_csv, name="org_usage_csv"),
    path(P + "usage/", views.project_usage, name="project_usage"),
    path(P + "usage.json", views.project_usage_json, name="project_usage_json"),
    path(P + "usage.csv", views.project_usage_csv, name="project_usage_csv"),
    path(P + "servers/<uuid:instance_id>/metrics.json", views.instance_metrics, name="instance_metrics"),
]
