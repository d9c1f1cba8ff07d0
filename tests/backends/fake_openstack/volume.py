"""Cinder v3, as far as the backend needs it: listed in the catalog (as `block-storage`) with its
version document, which is how a cloud shows it can make volumes. Nova makes a boot volume itself
(`block_device_mapping_v2` with `destination_type: volume`); without this service in the cloud,
such a server fails to build, as Nova's does when it cannot reach Cinder."""

from __future__ import annotations

from tests.backends.fake_openstack.server import Service

CINDER_MAX_MICROVERSION = "3.70"


class Volume(Service):
    name = "volume"
    catalog_type = "block-storage"
    catalog_name = "cinder"
    endpoint = "/v3/p-portal"

    def handle(self, method: str, rest: list, query: dict, headers, body: dict | None):
        if method == "GET" and not rest:
            return 300, {"versions": [self._version()]}, {}
        if method == "GET" and rest in (["v3"], ["v3", "p-portal"]):
            return 200, {"versions": [self._version()]}, {}
        return self.not_found(headers)

    def _version(self) -> dict:
        return {
            "id": "v3.0",
            "status": "CURRENT",
            "version": CINDER_MAX_MICROVERSION,
            "min_version": "3.0",
            "updated": "2023-08-31T00:00:00Z",
            "links": [{"rel": "self", "href": f"{self.cloud.url}/volume/v3/"}],
            "media-types": [
                {"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}
            ],
        }
