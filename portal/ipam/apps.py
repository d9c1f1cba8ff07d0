from django.apps import AppConfig


class IpamConfig(AppConfig):
    name = "portal.ipam"
    verbose_name = "Address pools (IPAM)"
