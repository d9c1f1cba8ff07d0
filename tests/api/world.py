"""One project with one of everything, for the endpoint tables of the scope and tenant tests."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from portal.catalog.models import Image
from portal.compute.models import FirewallRule, FirewallRuleSet, Network, Operation, Snapshot, SshKey, Volume
from tests.factories import InstanceFactory

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx0ctUYh4bn/lOm/GXl9lZtN0mRRlWwwQxGD1fWqWeP alice@laptop"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@desk"
MISSING_UUID = "00000000-0000-4000-8000-000000000000"
MISSING_INT = 987654


def build_world(project) -> dict:
    instance = InstanceFactory(project=project, name="app-1")
    firewall = FirewallRuleSet.objects.create(project=project, name="web")
    unused = FirewallRuleSet.objects.create(project=project, name="unused")
    image = Image.objects.create(
        name="before-upgrade", os_family="debian", version="snapshot", project=project, min_disk_gib=50
    )
    image.zones.add(instance.zone)
    snapshot = Snapshot.objects.create(
        project=project,
        zone=instance.zone,
        name="before-upgrade",
        kind="server",
        source_instance=instance,
        status="available",
        backend_id="simsnap-world",
        image_ref="simimg-world",
        size_gib=50,
        image=image,
    )
    return {
        "project": project.pk,
        "instance": instance.pk,
        "operation": Operation.objects.create(
            instance=instance, action="create", deadline=timezone.now(), state="succeeded"
        ).pk,
        "key": SshKey.objects.create(
            project=project,
            name="laptop",
            public_key=KEY_B,
            key_type="ssh-ed25519",
            bits=256,
            fingerprint="SHA256:world",
        ).pk,
        "firewall": firewall.pk,
        "unused_firewall": unused.pk,
        "rule": FirewallRule.objects.create(
            rule_set=firewall, port_from=22, port_to=22, source="0.0.0.0/0"
        ).pk,
        "volume": Volume.objects.create(
            project=project, name="data", zone=instance.zone, size_gib=10, status="available"
        ).pk,
        "snapshot": snapshot.pk,
        "image": image.pk,
        "network": Network.objects.create(
            project=project, name="lan", zone=instance.zone, cidr="10.99.0.0/24", status="available"
        ).pk,
    }


MISSING = {
    "project": MISSING_INT,
    "instance": MISSING_UUID,
    "operation": MISSING_UUID,
    "key": MISSING_INT,
    "firewall": MISSING_INT,
    "unused_firewall": MISSING_INT,
    "rule": MISSING_INT,
    "volume": "00000000-0000-4000-8000-000000000001",
    "snapshot": "00000000-0000-4000-8000-000000000002",
    "image": MISSING_INT,
    "network": "00000000-0000-4000-8000-000000000003",
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # with {names} from the world
    kind: str  # catalog | read | write | billing-read | billing-write
    body: object = None  # dict, or a function of the world

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.path}"

    def url(self, values: dict) -> str:
        return self.path.format(**values)

    def payload(self, values: dict):
        return self.body(values) if callable(self.body) else self.body


def _launch(w):
    return {
        "project": w["project"],
        "name": "web",
        "zone": "fra1-a",
        "flavor": "s-1vcpu-2gb",
        "image": "Debian 13",
    }


ENDPOINTS = [
    Endpoint("get", "catalog/zones", "catalog"),
    Endpoint("get", "catalog/flavors", "catalog"),
    Endpoint("get", "catalog/images", "catalog"),
    Endpoint("get", "catalog/prices", "catalog"),
    Endpoint("get", "projects", "list"),
    Endpoint("get", "projects/{project}", "read"),
    Endpoint("get", "projects/{project}/usage", "read"),
    Endpoint("get", "instances", "list"),
    Endpoint("get", "instances/{instance}", "read"),
    Endpoint("get", "operations/{operation}", "read"),
    Endpoint("get", "ssh-keys", "list"),
    Endpoint("get", "ssh-keys/{key}", "read"),
    Endpoint("get", "firewalls", "list"),
    Endpoint("get", "firewalls/{firewall}", "read"),
    Endpoint("get", "volumes", "list"),
    Endpoint("get", "volumes/{volume}", "read"),
    Endpoint("post", "instances", "write", _launch),
    Endpoint("post", "instances/{instance}/actions", "write", {"action": "stop"}),
    Endpoint("patch", "instances/{instance}", "write", {"termination_protection": True}),
    Endpoint("put", "instances/{instance}/reverse-dns", "write", {"name": "web.example.com"}),
    Endpoint("put", "instances/{instance}/firewall", "write", lambda w: {"firewall": w["firewall"]}),
    Endpoint("delete", "instances/{instance}", "write"),
    Endpoint("post", "ssh-keys", "write", lambda w: {"project": w["project"], "public_key": KEY_A}),
    Endpoint("delete", "ssh-keys/{key}", "write"),
    Endpoint("post", "firewalls", "write", lambda w: {"project": w["project"], "name": "db"}),
    Endpoint("delete", "firewalls/{unused_firewall}", "write"),
    Endpoint("post", "firewalls/{firewall}/rules", "write", {"port_from": 443, "source": "0.0.0.0/0"}),
    Endpoint("delete", "firewalls/{firewall}/rules/{rule}", "write"),
    Endpoint(
        "post",
        "volumes",
        "write",
        lambda w: {"project": w["project"], "name": "logs", "zone": "fra1-a", "size_gib": 5},
    ),
    Endpoint(
        "post",
        "volumes/{volume}/actions",
        "write",
        lambda w: {"action": "attach", "instance": str(w["instance"])},
    ),
    Endpoint("delete", "volumes/{volume}", "write"),
    Endpoint("get", "networks", "list"),
    Endpoint("get", "networks/{network}", "read"),
    Endpoint(
        "post",
        "networks",
        "write",
        lambda w: {"project": w["project"], "name": "backend", "zone": "fra1-a", "cidr": "10.98.0.0/24"},
    ),
    Endpoint(
        "post",
        "networks/{network}/actions",
        "write",
        lambda w: {"action": "attach", "instance": str(w["instance"])},
    ),
    Endpoint("delete", "networks/{network}", "write"),
    Endpoint("get", "snapshots", "list"),
    Endpoint("get", "snapshots/{snapshot}", "read"),
    Endpoint("post", "snapshots", "write", lambda w: {"project": w["project"], "server": str(w["instance"])}),
    Endpoint("delete", "snapshots/{snapshot}", "write"),
    Endpoint("get", "snapshots/{snapshot}/copy-targets", "read"),
    Endpoint("post", "snapshots/{snapshot}/copies", "write", {"zone": "ams1-a"}),
    Endpoint(
        "post",
        "instances/{instance}/restore",
        "write",
        lambda w: {"snapshot": str(w["snapshot"]), "confirm_name": "app-1"},
    ),
    Endpoint("get", "images", "list"),
    Endpoint("delete", "images/{image}", "write"),
    Endpoint("get", "instances/{instance}/backup-schedule", "read"),
    Endpoint(
        "put",
        "instances/{instance}/backup-schedule",
        "write",
        {"frequency": "weekly", "hour": 3, "weekday": 6, "keep": 7},
    ),
    Endpoint("get", "projects/{project}/budget", "billing-read"),
    Endpoint("put", "projects/{project}/budget", "billing-write", {"amount": "500.00", "guard": "warn"}),
    Endpoint("delete", "projects/{project}/budget", "billing-write"),
]


def call(client, endpoint: Endpoint, values: dict, body_values: dict | None = None):
    url = endpoint.url(values)
    method = getattr(client, endpoint.method)
    if endpoint.method in ("get", "delete"):
        return method(url)
    return method(url, endpoint.payload(body_values or values) or {})
