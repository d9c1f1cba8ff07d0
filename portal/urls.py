from django.contrib import admin
from django.urls import include, path

from portal.accounts import views as account_views
from portal.api.urls import api_patterns
from portal.core import views as core_views

urlpatterns = [
    path("", core_views.home, name="home"),
    path("welcome/", core_views.welcome, name="welcome"),
    path("healthz", core_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/profile/", account_views.profile, name="profile"),
    path("accounts/", include("allauth.urls")),
    path("", include("portal.tenancy.urls")),
    path("", include("portal.residency.urls")),
    path("", include("portal.compute.urls")),
    path("", include("portal.budgets.urls")),
    path("", include("portal.metering.urls")),
    path("", include("portal.statements.urls")),
    path("", include("portal.api.urls")),
    *api_patterns,
]
