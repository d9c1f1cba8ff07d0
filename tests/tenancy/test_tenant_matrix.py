"""Access matrix generated from the URL patterns.

Every URL of the portal that takes an object from the path is called as an outsider (404, the
same page as for an id that does not exist) and, for state-changing methods, as a viewer (403).
A new URL with an unknown path parameter, or without an access check, makes these tests fail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from portal.catalog.models import Image
from portal.compute.models import FirewallRule, FirewallRuleSet, Network, Snapshot, SshKey, Volume
from portal.tenancy.models import Invitation, Role
from tests.factories import InstanceFactory, MembershipFactory, UserFactory

# How to fill each path parameter from the test organization's objects.
OBJECT_KWARGS = {
    "org_slug": lambda w: w["org"].slug,
    "project_slug": lambda w: w["project"].slug,
    "membership_id": lambda w: w["membership"].pk,
    "invitation_id": lambda w: w["invitation"].pk,
    "instance_id": lambda w: w["instance"].pk,
    "key_id": lambda w: w["ssh_key"].pk,
    "firewall_id": lambda w: w["firewall"].pk,
    "rule_id": lambda w: w["rule"].pk,
    "volume_id": lambda w: w["volume"].pk,
    "snapshot_id": lambda w: w["snapshot"].pk,
    "network_id": lambda w: w["network"].pk,
    "image_id": lambda w: w["image"].pk,
    "token_id": lambda w: w["api_token"].pk,
    # A statement's month: the organization's first (the current month, shown as a live preview).
    "year": lambda w: w["org"].created_at.year,
    "month": lambda w: w["org"].created_at.month,
}
MISSING = {
    "org_slug": "no-such-org",
    "project_slug": "no-such-project",
    "membership_id": 987654,
    "invitation_id": 987654,
    "instance_id": "00000000-0000-4000-8000-000000000000",
    "key_id": 987654,
    "firewall_id": 987654,
    "rule_id": 987654,
    "volume_id": "00000000-0000-4000-8000-000000000001",
    "snapshot_id": "00000000-0000-4000-8000-000000000002",
    "network_id": "00000000-0000-4000-8000-000000000003",
    "image_id": 987654,
    "token_id": 987654,
    "year": 2000,
    "month": 1,
}

# URLs whose parameters are not tenant objects, with the reason; tested elsewhere.
NOT_TENANT_SCOPED = {
    "tenancy:invitation_accept": "the token is the secret; see test_invitations.py",
}
# State-changing URLs a viewer may use, with the reason.
VIEWER_MAY_POST = {
    "tenancy:org_leave": "anyone may leave an organization",
    "api:tokens": "anyone may create a token for themselves; a viewer's can only read",
}
# Read-only pages a viewer may open; every other portal page that takes an object is 403 for GET too.
VIEWER_MAY_GET = {
    "tenancy:org_dashboard",
    "tenancy:members",
    "tenancy:project_dashboard",
    "residency:org_residency",
    "residency:project_residency",
    "compute:instance_list",
    "compute:instance_detail",
    "compute:instance_console",
    "compute:ssh_keys",
    "compute:firewalls",
    "compute:firewall_detail",
    "compute:volumes",
    "compute:volume_detail",
    "compute:networks",
    "compute:network_detail",
    "compute:volume_price",  # the price of a size typed into the new-volume form: catalog prices
    "compute:snapshots",
    "compute:images",
    "compute:instance_backups",
    "metering:project_usage",
    "metering:project_usage_json",
    "metering:project_usage_csv",
    "metering:org_usage",
    "metering:org_usage_json",
    "metering:org_usage_csv",
    "metering:instance_metrics",
    "budgets:project_budget",
    "budgets:project_leases",
    "api:tokens",
}


@dataclass(frozen=True)
class Route:
    name: str
    params: tuple[str, ...]


def _portal_routes(patterns=None, namespace: str = "") -> list[Route]:
    routes: list[Route] = []
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            routes += _portal_routes(entry.url_patterns, ns)
        elif isinstance(entry, URLPattern) and entry.callback.__module__.startswith("portal."):
            params = tuple(entry.pattern.converters)
            if params and entry.name:
                routes.append(Route(f"{namespace}{entry.name}", params))
    return routes


ROUTES = [r for r in _portal_routes() if r.name not in NOT_TENANT_SCOPED]


def test_matrix_covers_every_parameter():
    unknown = {(r.name, p) for r in ROUTES for p in r.params if p not in OBJECT_KWARGS}
    assert not unknown, f"Teach the tenant matrix these URL parameters: {sorted(unknown)}"
    assert len(ROUTES) >= 14


@pytest.fixture
def world(org, project, owner, viewer):
    target = MembershipFactory(
        organization=org, role=Role.MEMBER, user=UserFactory(email="target@example.com")
    )
    invitation = Invitation(organization=org, email="invitee@example.com", role=Role.MEMBER, invited_by=owner)
    invitation.new_token()
    invitation.save()
    instance = InstanceFactory(project=project)
    world = {
        "org": org,
        "project": project,
        "membership": target,
        "invitation": invitation,
        "instance": instance,
        "api_token": _api_token(org, owner),
    }
    return world | _compute_resources(project, instance)


def _api_token(org, owner):
    from datetime import timedelta

    from django.utils import timezone

    from portal.api.models import ApiToken

    token = ApiToken(user=owner, organization=org, name="ci", expires_at=timezone.now() + timedelta(days=7))
    token.set_secret()
    token.save()
    return token


def _compute_resources(project, instance) -> dict:
    firewall = FirewallRuleSet.objects.create(project=project, name="web")
    image = Image.objects.create(name="golden", os_family="debian", version="1", project=project)
    image.zones.add(instance.zone)
    snapshot = Snapshot.objects.create(
        project=project,
        zone=instance.zone,
        name="golden",
        kind="server",
        source_instance=instance,
        status="available",
        size_gib=50,
        image=image,
    )
    return {
        "ssh_key": SshKey.objects.create(
            project=project,
            name="laptop",
            public_key="ssh-ed25519 AAAA",
            key_type="ssh-ed25519",
            bits=256,
            fingerprint="SHA256:matrix",
        ),
        "firewall": firewall,
        "rule": FirewallRule.objects.create(rule_set=firewall, port_from=22, port_to=22, source="0.0.0.0/0"),
        "volume": Volume.objects.create(project=project, name="data", zone=instance.zone, size_gib=10),
        "snapshot": snapshot,
        "image": image,
        "network": Network.objects.create(
            project=project, name="lan", zone=instance.zone, cidr="10.20.0.0/24"
        ),
    }


def _url(route: Route, values: dict) -> str:
    return reverse(route.name, kwargs={p: values[p] for p in route.params})


def _normalise(html: str) -> str:
    return re.sub(r'(csrfmiddlewaretoken" value="|X-CSRFToken": "|nonce=")[^"]+', r"\1", html)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
@pytest.mark.parametrize("method", ["get", "post"])
def test_outsider_gets_the_same_404_as_for_a_missing_object(route, method, world, outsider, client_as):
    client = client_as(outsider)
    real = _url(route, {p: OBJECT_KWARGS[p](world) for p in route.params})
    response = getattr(client, method)(real)
    if response.status_code == 405:  # the method is not served at all: nothing is revealed
        return
    assert response.status_code == 404, f"{method.upper()} {real} as outsider"
    missing = getattr(client, method)(_url(route, MISSING))
    assert missing.status_code == 404
    assert _normalise(response.content.decode()) == _normalise(missing.content.decode())


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_viewer_cannot_change_anything(route, world, viewer, client_as):
    url = _url(route, {p: OBJECT_KWARGS[p](world) for p in route.params})
    response = client_as(viewer).post(
        url, {"name": "Renamed", "role": "owner", "email": "x@example.com", "confirm": world["project"].slug}
    )
    if route.name in VIEWER_MAY_POST:
        assert response.status_code != 403, VIEWER_MAY_POST[route.name]
        return
    assert response.status_code in (403, 405), f"POST {url} as viewer answered {response.status_code}"
    if response.status_code == 403:
        assert b"Viewer" in response.content  # the page says why


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_viewer_reads_only_what_is_meant_for_reading(route, world, viewer, client_as):
    url = _url(route, {p: OBJECT_KWARGS[p](world) for p in route.params})
    response = client_as(viewer).get(url)
    if route.name in VIEWER_MAY_GET:
        assert response.status_code == 200
    else:
        assert response.status_code in (403, 405), f"GET {url} as viewer answered {response.status_code}"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_anonymous_is_sent_to_sign_in(route, world, client):
    url = _url(route, {p: OBJECT_KWARGS[p](world) for p in route.params})
    response = client.get(url)
    assert response.status_code in (302, 405)
    if response.status_code == 302:
        assert response["Location"].startswith(reverse("account_login"))
