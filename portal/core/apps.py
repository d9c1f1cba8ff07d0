from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class CoreConfig(AppConfig):
    default = True
    name = "portal.core"
    label = "core"


class PortalAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "portal.core.admin_site.PortalAdminSite"
