from django.apps import AppConfig


class ResidencyConfig(AppConfig):
    name = "portal.residency"
    label = "residency"
