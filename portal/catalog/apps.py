from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "portal.catalog"
    label = "catalog"

    def ready(self) -> None:
        from portal.catalog.models import Flavor, Image, Region, Zone
        from portal.core.fragments import track

        for model in (Region, Zone, Flavor, Image):
            track(model)
