"""Resizing from the server page: nothing preselected, what changes for each size, and a smaller
size (fewer vCPUs or less RAM) only with its confirmation, which the server side insists on."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent
from portal.catalog.models import Flavor
from portal.compute.models import Instance, Operation
from portal.compute.views.instances import is_downsize
from tests.factories import InstanceFactory

pytestmark = pytest.mark.usefixtures("catalog")


def _action(client, instance, **data):
    project = instance.project
    url = reverse("compute:instance_action", args=[project.organization.slug, project.slug, instance.pk])
    return client.post(url, data)


def _row(page: str, code: str) -> str:
    found = re.search(rf'<tr id="resize-{code}">(.*?)</tr>', page, re.S)
    assert found, code
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip()


@pytest.fixture
def stopped(project):
    # Starter 2 (1 vCPU, 2 GiB) with Debian and a 50 GiB disk: 13.03 EUR a month while it runs.
    return InstanceFactory(project=project, name="db-1", status="stopped")


def test_each_size_says_what_changes_and_none_is_preselected(stopped, owner, client_as):
    page = client_as(owner).get(stopped.get_absolute_url()).content.decode()
    resize_panel = page.split('class="resize"')[1].split('class="protection"')[0]
    assert '<select id="resize-flavor"' not in page and "selected" not in resize_panel
    assert "the root disk keeps its 50 GiB and its data (a resize never shrinks a disk)" in page
    assert _row(page, "s-2vcpu-4gb").startswith(
        "Standard 4 1 → 2 2 → 4 GiB 13.03 → 21.06 EUR 50 GiB, kept Resize to Standard 4"
    )
    smaller = _row(page, "s-1vcpu-1gb")
    assert smaller.startswith("Starter 1 smaller 1 → 1 2 → 1 GiB 13.03 → 9.38 EUR 50 GiB, kept")
    assert "Shrink db-1 to Starter 1? It gets 1 GiB RAM instead of 2: programs" in smaller
    assert "s-1vcpu-2gb" not in re.findall(r'id="resize-([^"]+)"', page)  # the size it has


def test_a_bigger_size_is_one_click_in_the_panel(stopped, owner, client_as):
    bigger = Flavor.objects.get(code="s-2vcpu-4gb")
    response = _action(client_as(owner), stopped, action="resize", flavor=bigger.pk)
    assert response.status_code == 302
    operation = Operation.objects.get(instance=stopped)
    assert operation.action == "resize" and operation.params == {"flavor_id": bigger.pk}
    assert Instance.objects.get(pk=stopped.pk).status == "resizing"


def test_a_smaller_size_without_its_confirmation_is_refused_and_changes_nothing(stopped, owner, client_as):
    smaller = Flavor.objects.get(code="s-1vcpu-1gb")
    response = _action(client_as(owner), stopped, action="resize", flavor=smaller.pk)
    assert response.status_code == 400
    page = response.content.decode()
    assert "Starter 1 is smaller than Starter 2 (1 GiB RAM instead of 2): confirm the smaller size below." in page
    # The page opens the panel and that size's confirmation.
    assert '<details class="resize" open>' in page
    row = re.search(r'<tr id="resize-s-1vcpu-1gb">(.*?)</tr>', page, re.S).group(1)
    assert '<details class="confirm" open>' in row
    assert not Operation.objects.exists()
    assert Instance.objects.get(pk=stopped.pk).status == "stopped"
    assert not AuditEvent.objects.filter(action=AuditAction.INSTANCE_ACTION).exists()
    # Anything but the panel's own value is no confirmation.
    assert (
        _action(
            client_as(owner), stopped, action="resize", flavor=smaller.pk, confirm_downsize="yes"
        ).status_code
        == 400
    )
    assert not Operation.objects.exists()


def test_a_smaller_size_with_its_confirmation_resizes(stopped, owner, client_as):
    smaller = Flavor.objects.get(code="s-1vcpu-1gb")
    response = _action(client_as(owner), stopped, action="resize", flavor=smaller.pk, confirm_downsize="1")
    assert response.status_code == 302
    assert Operation.objects.get(instance=stopped).params == {"flavor_id": smaller.pk}


@pytest.mark.parametrize(
    ("current", "new", "smaller"),
    [
        ("s-1vcpu-2gb", "s-2vcpu-4gb", False),
        ("s-2vcpu-4gb", "s-1vcpu-2gb", True),
        ("m-8vcpu-64gb", "c-8vcpu-16gb", True),  # the same vCPUs, less RAM
        ("m-8vcpu-64gb", "c-16vcpu-32gb", True),  # more vCPUs, less RAM
        ("c-8vcpu-16gb", "m-8vcpu-64gb", False),
    ],
)
def test_smaller_means_fewer_vcpus_or_less_ram(current, new, smaller):
    assert is_downsize(Flavor.objects.get(code=current), Flavor.objects.get(code=new)) is smaller


def test_a_running_server_offers_no_sizes(project, owner, client_as):
    instance = InstanceFactory(project=project, status="running")
    page = client_as(owner).get(instance.get_absolute_url()).content.decode()
    assert "To change the size, stop the server first." in page and 'class="resize"' not in page


def test_a_smaller_size_for_a_running_server_is_refused_for_its_state(project, owner, client_as):
    instance = InstanceFactory(project=project, name="web-1", status="running")
    smaller = Flavor.objects.get(code="s-1vcpu-1gb")
    response = _action(client_as(owner), instance, action="resize", flavor=smaller.pk)
    assert response.status_code == 409
    assert "web-1 is running: “Resize” works only when it is stopped." in response.content.decode()
    assert not Operation.objects.exists()
