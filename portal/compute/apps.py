from django.apps import AppConfig


class ComputeConfig(AppConfig):
    name = "portal.compute"
    label = "compute"

    def ready(self) -> None:
        from portal.compute import placed  # noqa: F401  (registers instances and volumes with residency)
