from django.urls import include, path

from portal.compute.views import consoles, instance_firewall, instances, launch

app_name = "compute"

P = "o/<slug:org_slug>/p/<slug:project_slug>/"

urlpatterns = [
    path(P + "servers/", instances.instance_list, name="instance_list"),
    path(P + "servers/new/", launch.launch, name="launch"),
    path(P + "servers/new/check/", launch.launch_check, name="launch_check"),
    path(P + "servers/<uuid:instance_id>/", instances.instance_detail, name="instance_detail"),
    path(P + "servers/<uuid:instance_id>/console/", instances.instance_console, name="instance_console"),
    path(
        P + "servers/<uuid:instance_id>/console/open/",
        consoles.instance_console_open,
        name="instance_console_open",
    ),
    path(
        P + "servers/<uuid:instance_id>/password/",
        consoles.instance_password_reset,
        name="instance_password_reset",
    ),
    path(
        P + "servers/<uuid:instance_id>/graphical-console/",
        consoles.instance_graphical_console,
        name="instance_graphical_console",
    ),
    path(P + "servers/<uuid:instance_id>/action/", instances.instance_action, name="instance_action"),
    path(
        P + "servers/<uuid:instance_id>/protection/",
        instances.instance_protection,
        name="instance_protection",
    ),
    path(
        P + "servers/<uuid:instance_id>/reverse-dns/",
        instances.instance_reverse_dns,
        name="instance_reverse_dns",
    ),
    path(
        P + "servers/<uuid:instance_id>/firewall/",
        instance_firewall.instance_firewall,
        name="instance_firewall",
    ),
    path("", include("portal.compute.urls_resources")),
    path("", include("portal.compute.urls_snapshots")),
]
