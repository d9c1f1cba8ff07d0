"""Glance v2: its versions, and the active public images (listed, filtered by name, or one by id)."""

from __future__ import annotations

import uuid

from tests.backends.fake_openstack.server import Service


class Image(Service):
    name = "image"
    catalog_type = "image"
    catalog_name = "glance"

    def __init__(self, cloud) -> None:
        super().__init__(cloud)
        debian = str(uuid.UUID(int=12))
        self.images = {
            debian: {"id": debian, "name": "debian-12", "min_disk": 2},
            str(uuid.UUID(int=13)): {"id": str(uuid.UUID(int=13)), "name": "Debian 12", "min_disk": 2},
        }

    def handle(self, method: str, rest: list, query: dict, headers, body: dict | None):
        if method == "GET" and not rest:
            versions = [
                {
                    "id": "v2.16",
                    "status": "CURRENT",
                    "links": [{"rel": "self", "href": f"{self.cloud.url}/image/v2/"}],
                },
                {
                    "id": "v2.0",
                    "status": "SUPPORTED",
                    "links": [{"rel": "self", "href": f"{self.cloud.url}/image/v2/"}],
                },
            ]
            return 300, {"versions": versions}, {}
        match (method, rest):
            case ("GET", ["v2", "images"]):
                images = [self._image_view(i) for i in self.images.values()]
                if "name" in query:
                    images = [i for i in images if i["name"] == query["name"][0]]
                return 200, {"images": images, "first": "/v2/images", "schema": "/v2/schemas/images"}, {}
            case ("GET", ["v2", "images", image_id]) if image_id in self.images:
                return 200, self._image_view(self.images[image_id]), {}
        return (
            404,
            "<html><body><h1>404 Not Found</h1>No image found with ID x</body></html>",
            {"Content-Type": "text/html"},
        )

    def _image_view(self, image: dict) -> dict:
        return {
            **image,
            "status": "active",
            "visibility": "public",
            "protected": False,
            "min_ram": 0,
            "disk_format": "qcow2",
            "container_format": "bare",
            "size": 356712448,
            "tags": [],
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "owner": "p-admin",
            "os_hidden": False,
            "self": f"/v2/images/{image['id']}",
            "file": f"/v2/images/{image['id']}/file",
            "schema": "/v2/schemas/image",
        }
