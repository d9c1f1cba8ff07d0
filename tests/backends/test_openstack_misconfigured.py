"""A cloud set up wrongly is told apart from a busy one: a wrong auth URL, an endpoint that is not the
API, a route the cloud does not have. Each is a configuration error ("not connected" for customers, a
sentence for the operator in the zone's health), not a retry, and a 404 means the server is gone
only when Nova says so about the server itself."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.catalog.models import Zone
from portal.compute import reconciler
from portal.compute.backends.base import NotFound, Rejected, get_backend
from portal.compute.backends.openstack import OpenStackBackend
from portal.compute.backends.openstack_mapping import GONE, NOT_CONNECTED
from portal.compute.models import Instance, Operation
from tests.backends.fake_openstack import PASSWORD, REGION, backend_options
from tests.backends.openstack_specs import spec
from tests.steps import drive


def _signing_in_at(cloud, auth_url: str, monkeypatch) -> OpenStackBackend:
    monkeypatch.setenv("FAKE_OPENSTACK_PASSWORD", PASSWORD)
    options = backend_options(cloud)
    options["auth"]["auth_url"] = auth_url
    return OpenStackBackend("openstack", **options)


# --- a wrong auth URL ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v3", "/keystone/v3", "/"])
def test_a_wrong_auth_url_is_a_configuration_error(db, fake_openstack, monkeypatch, path):
    # Keystone lives at /identity/v3; the web server in front answers 404 everywhere else.
    auth_url = fake_openstack.url + path
    backend = _signing_in_at(fake_openstack, auth_url, monkeypatch)
    with pytest.raises(Rejected) as refused:
        backend.find_server("osl1-a", "x")
    assert refused.value.user_message == NOT_CONNECTED
    assert refused.value.detail == f"Keystone did not answer at {auth_url} (404): check auth_url"
    with pytest.raises(Rejected, match="not connected"):
        backend.check_health("osl1-a")
    backend.close()


@pytest.fixture
def misconfigured_zone(catalog, knobs, fake_openstack, settings, monkeypatch):
    """fra1-a served by an OpenStack backend whose auth URL misses Keystone's /identity prefix."""
    monkeypatch.setenv("FAKE_OPENSTACK_PASSWORD", PASSWORD)
    options = backend_options(fake_openstack, zones={})
    options["auth"]["auth_url"] = f"{fake_openstack.url}/v3"
    settings.COMPUTE_BACKENDS = settings.COMPUTE_BACKENDS | {
        "openstack": {"CLASS": "portal.compute.backends.openstack.OpenStackBackend", "OPTIONS": options}
    }
    get_backend.cache_clear()
    Zone.objects.filter(code="fra1-a").update(
        backend="openstack",
        backend_settings={"region": REGION, "availability_zone": "nova", "network": "public"},
    )
    yield Zone.objects.get(code="fra1-a")
    get_backend("openstack").close()
    get_backend.cache_clear()


def test_the_zone_health_names_the_wrong_auth_url(misconfigured_zone, admin_client, fake_openstack):
    reconciler.reconcile()
    misconfigured_zone.refresh_from_db()
    message = f"Keystone did not answer at {fake_openstack.url}/v3 (404): check auth_url"
    assert misconfigured_zone.backend_error == message
    listing = admin_client.get(reverse("admin:catalog_zone_changelist")).content.decode()
    assert f"✗ {message}" in listing


def test_a_launch_in_a_misconfigured_zone_fails_at_once(misconfigured_zone, launch):
    batch = launch(zone="fra1-a")
    create = Operation.objects.get(instance__batch=batch)
    drive(create, limit=3)  # a Transient would still be waiting for its retry
    create.refresh_from_db()
    assert create.state == "failed" and create.attempts == 0
    assert create.error_message == NOT_CONNECTED
    assert create.error_detail.startswith("Keystone did not answer at ")
    assert Instance.objects.get(batch=batch).status == "error"


# --- an endpoint that is not the API, a route the cloud does not have ------------------------------


def test_a_compute_endpoint_that_is_not_nova_is_not_a_gone_server(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    created = backend.create_server(spec(zone))
    backend.close()  # sign in again: the catalog is read then
    fake_openstack.identity.catalog_urls["compute"] = f"{fake_openstack.url}/nova/v2.1"
    for call in (backend.get_server, backend.delete_server, backend.stop_server):
        with pytest.raises(Rejected) as refused:
            call(created.backend_id)
        assert refused.value.user_message == NOT_CONNECTED
        assert "a web page, not the API, answered" in refused.value.detail
    assert len(fake_openstack.compute.live_servers()) == 1  # nothing was deleted


def test_a_route_missing_during_create_is_a_configuration_error(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    fake_openstack.remove_route("GET", r"/servers/detail$")
    with pytest.raises(Rejected) as refused:
        backend.create_server(spec(zone))
    assert refused.value.user_message == NOT_CONNECTED
    assert "answered 404: the cloud does not have this call" in refused.value.detail
    assert "/compute/v2.1/servers/detail" in refused.value.detail


@pytest.mark.parametrize(
    "route",
    [r"/image/v2/images$", r"/compute/v2.1/flavors/detail$", r"/network/v2.0/networks$"],
    ids=["glance-images", "nova-flavors", "neutron-networks"],
)
def test_a_missing_lookup_route_is_not_a_gone_server(openstack_backend, fake_openstack, route):
    backend, zone = openstack_backend
    fake_openstack.remove_route("GET", route)
    with pytest.raises(Rejected) as refused:
        backend.create_server(spec(zone))
    assert refused.value.user_message == NOT_CONNECTED
    assert "answered 404" in refused.value.detail
    assert fake_openstack.compute.live_servers() == []


def test_only_novas_404_for_the_server_itself_means_gone(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    created = backend.create_server(spec(zone))
    fake_openstack.compute.servers.clear()  # deleted behind the portal's back
    for call in (backend.get_server, backend.stop_server, backend.console_output):
        with pytest.raises(NotFound) as gone:
            call(created.backend_id)
        assert gone.value.user_message == GONE
    backend.delete_server(created.backend_id)  # already gone: fine


def test_a_dashboard_where_an_api_should_be_is_a_configuration_error(db, fake_openstack, monkeypatch):
    # Horizon answers 200 with its login page to anything under /dashboard.
    auth_url = f"{fake_openstack.url}/dashboard"
    backend = _signing_in_at(fake_openstack, auth_url, monkeypatch)
    with pytest.raises(Rejected) as refused:
        backend.find_server("osl1-a", "x")
    assert refused.value.user_message == NOT_CONNECTED
    assert refused.value.detail == (
        f"Keystone did not answer at {auth_url} (a web page, not the identity API): check auth_url"
    )
    backend.close()


def test_a_compute_endpoint_answering_a_web_page_is_a_configuration_error(openstack_backend, fake_openstack):
    backend, zone = openstack_backend
    created = backend.create_server(spec(zone))
    backend.close()
    fake_openstack.identity.catalog_urls["compute"] = f"{fake_openstack.url}/dashboard/v2.1"
    with pytest.raises(Rejected) as unreadable:
        backend.get_server(created.backend_id)  # openstacksdk hands back a server with only its id
    assert unreadable.value.user_message == NOT_CONNECTED
    assert "check the compute endpoint" in unreadable.value.detail
    with pytest.raises(Rejected) as listing:
        backend.list_servers(zone)
    assert listing.value.user_message == NOT_CONNECTED
    assert "not JSON" in listing.value.detail
