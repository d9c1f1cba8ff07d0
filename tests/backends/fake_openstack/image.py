"""Glance v2: its versions, and the project's images (listed, filtered, one by id, deleted).

Nova's `createImage` (compute_storage.py) adds a private snapshot image, `queued`, then `saving`,
then `active`; what Nova was given as metadata are the image's own properties, which the list filters
on like any field (`?portal-storage-id=…`), as Glance's does. A protected image is not deleted (403).

`ignores_filters = True` makes the list answer every image whatever the query asks, as a cloud
behind a proxy that drops the query string, or an old Glance that did not know a filter, would.

Images are also made through the API, as Glance's does: `POST /v2/images` adds one `queued` (no
data; its extra properties must be strings), `PUT …/file` (application/octet-stream, chunked or
not) takes its data — 409 unless it is `queued` — and leaves it `active`; `GET …/file` answers the
data (204 while there is none). An image Nova made has data too (`image_data`).

The cloud has a Glance per region: `Image` in RegionOne (`cloud.image`), `ImageRegionTwo` in
RegionTwo (`cloud.image2`), each with its own images."""

from __future__ import annotations

import hashlib
import uuid

from tests.backends.fake_openstack.identity import REGION, REGION_TWO
from tests.backends.fake_openstack.server import Service, now_iso, webob_error

# Query parameters of Glance's list that are not filters; every other one filters on the image's field
# or property of that name. They compare without regard to case, as Glance's do on MySQL (whose
# default collation ignores case): `name=debian 12` finds "Debian 12".
NOT_FILTERS = ("limit", "marker", "sort", "sort_key", "sort_dir", "member_status")
DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
# What a POST may set besides extra properties (Glance's image schema; the rest is read-only).
SETTABLE = (
    "name",
    "disk_format",
    "container_format",
    "min_disk",
    "min_ram",
    "visibility",
    "protected",
    "tags",
    "id",
)


def image_data(image_id: str) -> bytes:
    """The data of an image nobody uploaded (the seeded ones, Nova's snapshots): small, and its own."""
    return b"QFI\xfb" + image_id.encode() * 64


class Image(Service):
    name = "image"
    catalog_type = "image"
    catalog_name = "glance"
    regions = (REGION,)

    def __init__(self, cloud) -> None:
        super().__init__(cloud)
        self.images: dict[str, dict] = {}
        self.data: dict[str, bytes] = {}  # image id -> what was uploaded
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
                    "links": [{"rel": "self", "href": f"{self.cloud.url}/{self.name}/v2/"}],
                },
                {
                    "id": "v2.0",
                    "status": "SUPPORTED",
                    "links": [{"rel": "self", "href": f"{self.cloud.url}/{self.name}/v2/"}],
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
            case ("POST", ["v2", "images"]):
                return self._create(headers, body or {})
            case ("PUT", ["v2", "images", image_id, "file"]):
                return self._upload(headers, image_id, body)
            case ("GET", ["v2", "images", image_id, "file"]):
                image = self.images.get(image_id)
                if image is None:
                    return webob_error(headers, 404, "Not Found", f"No image found with ID {image_id}")
                if image["status"] != "active":
                    return 204, None, {}
                return 200, self.data.get(image_id) or image_data(image_id), {}
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
                self.data.pop(image_id, None)
                return 204, None, {}
        return self.not_found(headers)

    def _create(self, headers, body: dict) -> tuple:
        problems = []
        if body.get("disk_format") not in (None, *DISK_FORMATS):
            problems.append(f"Invalid value '{body['disk_format']}' for disk_format")
        if body.get("container_format") not in (None, *CONTAINER_FORMATS):
            problems.append(f"Invalid value '{body['container_format']}' for container_format")
        for key, value in body.items():
            if key not in SETTABLE and not isinstance(value, str):
                problems.append(
                    f"Provided object does not match schema 'image': {value!r} is not of type 'string'"
                )
        if body.get("id") in self.images:
            return webob_error(
                headers, 409, "Conflict", f"An image with identifier {body['id']} already exists"
            )
        if problems:
            return webob_error(headers, 400, "Bad Request", "; ".join(problems))
        fields = {k: v for k, v in body.items() if k not in ("name", "id", "min_disk", "visibility")}
        image = self.add_image(
            body.get("name") or "",
            image_id=body.get("id") or "",
            status="queued",
            min_disk=int(body.get("min_disk") or 0),
            visibility=body.get("visibility") or "shared",
            size=None,
            owner="p-portal",
            **fields,
        )
        return (
            201,
            self._image_view(image),
            {"Location": f"{self.cloud.url}/{self.name}/v2/images/{image['id']}"},
        )

    def _upload(self, headers, image_id: str, body) -> tuple:
        image = self.images.get(image_id)
        if image is None:
            return webob_error(headers, 404, "Not Found", f"No image found with ID {image_id}")
        if headers.get("Content-Type") != "application/octet-stream":
            return webob_error(headers, 415, "Unsupported Media Type", "The media type is not supported")
        if image["status"] != "queued":
            return webob_error(
                headers,
                409,
                "Conflict",
                f"Image status transition from {image['status']} to saving is not allowed",
            )
        data = body if isinstance(body, bytes) else b""
        self.data[image_id] = data
        image.update(status="active", size=len(data), checksum=hashlib.md5(data).hexdigest())  # noqa: S324
        return 204, None, {}

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


class ImageRegionTwo(Image):
    """The Glance of the cloud's second region: its own images (the same seeded public ones)."""

    name = "image2"
    regions = (REGION_TWO,)
