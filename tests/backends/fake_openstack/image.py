"""Glance v2: its versions, and the project's images (listed, filtered, one by id, deleted).

Nova's `createImage` (compute_storage.py) adds a private snapshot image, `queued`, then `saving`,
then `active`; what Nova was given as metadata are the image's own properties, which the list filters
on like any field (`?portal-storage-id=…`), as Glance's does. A protected image is not deleted (403).

`ignores_filters = True` makes the list answer every image whatever the query asks, as a cloud
behind a proxy that drops the query string, or an old Glance that did not know a filter, would."""

from __future__ import annotations

import uuid

from tests.backends.fake_openstack.server import Service, now_iso, webob_error

# Query parameters of Glance's list that are not filters; every other one filters on the image's field
# or property of that name. They compare without regard to case, as Glance's do on MySQL (whose
# default collation ignores case): `name=debian 12` finds "Debian 12".
NOT_FILTERS = ("limit", "marker", "sort", "sort_key", "sort_dir", "member_status")


class Image(Service):
    name = "image"
    catalog_type = "image"
    catalog_name = "glance"

    def __init__(self, cloud) -> None:
        super().__init__(cloud)
        self.images: dict[str, dict] = {}
        self.ignores_filters = False
        self.add_image("debian-12", image_id=str(uuid.UUID(int=12)), created_at="2026-01-01T00:00:00Z")
        self.add_image("Debian 12", image_id=str(uuid.UUID(int=13)), created_at="2026-01-01T00:00:00Z")

    def add_image(
        self,
        name: str,
        *,
        image_id: str = "",
        status: str = "active",
        created_at: str = "",
        min_disk: int = 2,
        **fields,
    ) -> dict:
        """An image; `fields` override the defaults of `_image_view` (visibility, size…) or are
        the image's properties."""
        image_id = image_id or str(uuid.uuid4())
        self.images[image_id] = {
            **fields,
            "id": image_id,
            "name": name,
            "min_disk": min_disk,
            "status": status,
            "created_at": created_at or now_iso(),
        }
        return self.images[image_id]

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
                for name in query if not self.ignores_filters else ():
                    if name not in NOT_FILTERS:
                        wanted = query[name][0].casefold()
                        images = [i for i in images if name in i and str(i[name]).casefold() == wanted]
                images.sort(key=lambda i: i["created_at"], reverse=True)  # Glance's default order
                return 200, {"images": images, "first": "/v2/images", "schema": "/v2/schemas/images"}, {}
            case ("GET", ["v2", "images", image_id]):
                if image_id not in self.images:
                    return webob_error(headers, 404, "Not Found", f"No image found with ID {image_id}")
                return 200, self._image_view(self.images[image_id]), {}
            case ("DELETE", ["v2", "images", image_id]):
                image = self.images.get(image_id)
                if image is None:
                    return webob_error(headers, 404, "Not Found", f"No image found with ID {image_id}")
                if image.get("protected"):
                    return webob_error(
                        headers, 403, "Forbidden", f"Image {image_id} is protected and cannot be deleted."
                    )
                del self.images[image_id]
                return 204, None, {}
        return self.not_found(headers)

    def _image_view(self, image: dict) -> dict:
        return {
            "visibility": "public",
            "protected": False,
            "min_ram": 0,
            "disk_format": "qcow2",
            "container_format": "bare",
            "size": 356712448,
            "tags": [],
            "updated_at": image["created_at"],
            "owner": "p-admin",
            "os_hidden": False,
            "self": f"/v2/images/{image['id']}",
            "file": f"/v2/images/{image['id']}/file",
            "schema": "/v2/schemas/image",
            **image,
        }
