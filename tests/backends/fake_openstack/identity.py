"""Keystone v3: its version documents, password sign-in for one user and project, token checks, and
the service catalog, which lists every service the cloud was made with (`catalog_urls` points an
entry somewhere else, as a wrong endpoint in a real catalog would)."""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta

from tests.backends.fake_openstack.server import UNAUTHORIZED, Service, now_iso

USERNAME = "portal"
PASSWORD = "correct horse battery staple"
PROJECT = "portal-customers"
REGION = "RegionOne"
REGION_TWO = "RegionTwo"  # where the cloud has a Glance of its own, for copies of images
NOT_FOUND = "The resource could not be found."


class Identity(Service):
    name = "identity"
    catalog_type = "identity"
    catalog_name = "keystone"
    needs_token = False  # signing in is how a client gets one

    def __init__(self, cloud) -> None:
        super().__init__(cloud)
        self.catalog_urls: dict[str, str] = {}  # service name -> the URL the catalog gives instead

    def not_found(self, headers) -> tuple:
        return 404, {"error": {"code": 404, "title": "Not Found", "message": NOT_FOUND}}, {}

    def handle(self, method: str, rest: list, query: dict, headers, body: dict | None):
        tokens = self.cloud.tokens
        if method == "GET" and rest in ([], ["v3"]):
            if not rest:
                return 300, {"versions": {"values": [self.version()]}}, {}
            return 200, {"version": self.version()}, {}
        if rest == ["v3", "auth", "tokens"] and method == "POST":
            identity = (body or {}).get("auth", {}).get("identity", {})
            user = identity.get("password", {}).get("user", {})
            if user.get("name") != USERNAME or user.get("password") != PASSWORD:
                return 401, UNAUTHORIZED, {}
            token = uuid.uuid4().hex
            expires = datetime.now(UTC) + timedelta(hours=1)
            tokens[token] = time.time() + 3600
            return 201, {"token": self._token_body(expires)}, {"X-Subject-Token": token}
        if rest == ["v3", "auth", "tokens"] and method == "GET":
            if tokens.get(headers.get("X-Subject-Token", ""), 0) < time.time():
                message = f"Could not find token: {headers.get('X-Subject-Token', '')}."
                return 404, {"error": {"code": 404, "title": "Not Found", "message": message}}, {}
            expires = datetime.fromtimestamp(tokens[headers["X-Subject-Token"]], UTC)
            return 200, {"token": self._token_body(expires)}, {"X-Subject-Token": headers["X-Subject-Token"]}
        return self.not_found(headers)

    def version(self) -> dict:
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{self.cloud.url}/identity/v3/"}],
            "media-types": [
                {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
            ],
        }

    def _token_body(self, expires: datetime) -> dict:
        def endpoints(service: Service) -> list[dict]:
            url = self.catalog_urls.get(service.name) or f"{self.cloud.url}/{service.name}{service.endpoint}"
            return [
                {
                    "id": hashlib.md5(f"{service.name}{region}{interface}".encode()).hexdigest(),  # noqa: S324
                    "interface": interface,
                    "region": region,
                    "region_id": region,
                    "url": url,
                }
                for region in service.regions or (REGION, REGION_TWO)
                for interface in ("public", "internal")
            ]

        def entry(kind: str, services: list[Service]) -> dict:
            return {
                "id": hashlib.md5(kind.encode()).hexdigest(),  # noqa: S324 - an id, not security
                "type": kind,
                "name": services[0].catalog_name,
                "endpoints": [e for service in services for e in endpoints(service)],
            }

        by_type: dict[str, list[Service]] = {}
        for service in self.cloud.services.values():
            if service.catalog_type:
                by_type.setdefault(service.catalog_type, []).append(service)
        domain = {"id": "default", "name": "Default"}
        return {
            "methods": ["password"],
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "issued_at": now_iso(),
            "user": {"id": "u-portal", "name": USERNAME, "domain": domain, "password_expires_at": None},
            "project": {"id": "p-portal", "name": PROJECT, "domain": domain},
            "roles": [{"id": "r-member", "name": "member"}, {"id": "r-reader", "name": "reader"}],
            "catalog": [entry(kind, services) for kind, services in by_type.items()],
        }
