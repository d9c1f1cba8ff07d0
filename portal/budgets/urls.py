from django.urls import path

from portal.budgets import views

app_name = "budgets"

P = "o/<slug:org_slug>/p/<slug:project_slug>/"

urlpatterns = [
    path(P + "budget/", views.project_budget, name="project_budget"),
    path(P + "leases/", views.project_leases, name="project_leases"),
]
