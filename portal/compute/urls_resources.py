# SSH keys, firewall rule sets, volumes and private networks (pages in portal/compute/views/).
from django.urls import path

from portal.compute.views import firewalls, keys, networks, volumes

P = "o/<slug:org_slug>/p/<slug:project_slug>/"

urlpatterns = [
    path(P + "keys/", keys.ssh_keys, name="ssh_keys"),
    path(P + "keys/<int:key_id>/delete/", keys.ssh_key_delete, name="ssh_key_delete"),
    path(P + "firewalls/", firewalls.firewalls, name="firewalls"),
    path(P + "firewalls/<int:firewall_id>/", firewalls.firewall_detail, name="firewall_detail"),
    path(
        P + "firewalls/<int:firewall_id>/rules/<int:rule_id>/delete/",
        firewalls.firewall_rule_delete,
        name="firewall_rule_delete",
    ),
    path(P + "firewalls/<int:firewall_id>/delete/", firewalls.firewall_delete, name="firewall_delete"),
    path(P + "volumes/", volumes.volumes, name="volumes"),
    path(P + "volumes/price/", volumes.volume_price, name="volume_price"),
    path(P + "volumes/<uuid:volume_id>/", volumes.volume_detail, name="volume_detail"),
    path(P + "volumes/<uuid:volume_id>/extend/", volumes.volume_extend, name="volume_extend"),
    path(P + "volumes/<uuid:volume_id>/attach/", volumes.volume_attach, name="volume_attach"),
    path(P + "volumes/<uuid:volume_id>/detach/", volumes.volume_detach, name="volume_detach"),
    path(P + "volumes/<uuid:volume_id>/delete/", volumes.volume_delete, name="volume_delete"),
    path(P + "networks/", networks.networks, name="networks"),
    path(P + "networks/join/", networks.network_join, name="network_join"),
    path(P + "networks/<uuid:network_id>/", networks.network_detail, name="network_detail"),
    path(P + "networks/<uuid:network_id>/attach/", networks.network_attach, name="network_attach"),
    path(P + "networks/<uuid:network_id>/detach/", networks.network_detach, name="network_detach"),
    path(P + "networks/<uuid:network_id>/delete/", networks.network_delete, name="network_delete"),
]
