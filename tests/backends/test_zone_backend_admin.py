"""Operators wire zones to backends in admin: validated names and settings, no secrets stored,
and a health check they can see (updated by the reconciler and on demand)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from portal.catalog.models import Zone
from portal.compute import reconciler
from portal.compute.backends import Transient
from portal.compute.backends.base import get_backend
from portal.compute.backends.simulated import SimulatedBackend

pytestmark = pytest.mark.django_db


class UnreachableBackend(SimulatedBackend):
    def list_servers(self, zone):
        raise Transient("The cloud is busy; we will retry.", "connection refused by kvm7.example:16509")

    def zone_capacity(self, zone):
        raise Transient("The cloud is busy; we will retry.", "connection refused by kvm7.example:16509")


@pytest.fixture
def broken_backend(settings):
    settings.COMPUTE_BACKENDS = {
        **settings.COMPUTE_BACKENDS,
        "broken": {"CLASS": f"{__name__}.UnreachableBackend", "OPTIONS": {}},
    }
    get_backend.cache_clear()
    yield "broken"
    get_backend.cache_clear()


def test_an_unknown_backend_name_is_refused_with_the_known_ones(catalog):
    zone = catalog["fra1-a"]
    zone.backend = "libvrt"
    with pytest.raises(ValidationError) as refused:
        zone.full_clean()
    assert "No backend named 'libvrt'" in str(refused.value) and "simulated" in str(refused.value)


@pytest.mark.parametrize("key", ["password", "os_password", "client_secret", "token"])
def test_a_secret_value_in_zone_settings_is_refused(catalog, key):
    zone = catalog["fra1-a"]
    zone.backend_settings = {"cloud": "prod", key: "hunter2"}
    with pytest.raises(ValidationError) as refused:
        zone.full_clean()
    assert "store secrets here" in str(refused.value)


def test_naming_where_a_secret_lives_is_fine(catalog):
    zone = catalog["fra1-a"]
    zone.backend_settings = {"cloud": "prod", "password_env": "OS_PASSWORD", "private_key_file": "/etc/k"}
    zone.full_clean()


def test_admin_refuses_bad_settings_with_a_message_not_a_500(admin_client, catalog):
    zone = catalog["fra1-a"]
    url = reverse("admin:catalog_zone_change", args=[zone.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items()}
    data.update(region=zone.region_id, backend_settings='{"password": "hunter2"}')
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "Don&#x27;t store secrets here" in response.content.decode()
    zone.refresh_from_db()
    assert zone.backend_settings == {}


def test_check_backend_action_reports_health(admin_client, catalog, knobs, broken_backend):
    good, bad = catalog["fra1-a"], catalog["iad1-a"]
    Zone.objects.filter(pk=bad.pk).update(backend=broken_backend)
    response = admin_client.post(
        reverse("admin:catalog_zone_changelist"),
        {"action": "check_backend", "_selected_action": [good.pk, bad.pk]},
        follow=True,
    )
    page = response.content.decode().lower()
    assert "fra1-a (simulated): " in page and "vcpus" in page
    assert "iad1-a (broken): connection refused by kvm7.example:16509" in page
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.backend_checked_at and good.backend_error == ""
    assert bad.backend_error == "connection refused by kvm7.example:16509"
    listing = admin_client.get(reverse("admin:catalog_zone_changelist")).content.decode()
    assert "✗ connection refused by kvm7.example:16509 (" in listing and "✓ answering" in listing


def test_the_reconciler_records_an_unreachable_zone_and_goes_on(catalog, knobs, broken_backend):
    Zone.objects.filter(code="iad1-a").update(backend=broken_backend)
    reconciler.reconcile()
    bad, good = Zone.objects.get(code="iad1-a"), Zone.objects.get(code="fra1-a")
    assert "connection refused" in bad.backend_error and bad.backend_checked_at
    assert good.backend_error == "" and good.capacity_updated_at is not None
