from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "portal.catalog"
    label = "catalog"

    def ready(self) -> None:
        from portal.catalog.models import Flavor, Image, Jurisdiction, Region, Zone
        from portal.core.fragments import track

        for model in (Jurisdiction, Region, Zone, Flavor, Image):  # the list shows names, orders zones
            track(model)
