"""A terminated server's page: what it was, who terminated it and when, how long it ran and what it
cost (from its usage segments), with no actions; the link in its e-mails keeps working."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.urls import reverse

from portal.compute import services
from portal.compute.models import Instance, Operation
from portal.metering.models import UsageSegment
from tests.factories import InstanceFactory
from tests.steps import drive

pytestmark = pytest.mark.django_db


def _terminated_through_the_portal(launch, access, capture):
    batch = launch(name="web-1")
    with capture(execute=True):
        drive(Operation.objects.get(instance__batch=batch))
        instance = Instance.objects.get(batch=batch)
        operation = services.instance_action(
            access=access, instance=instance, action="terminate", confirm_name="web-1"
        )
        drive(operation)
    return instance, instance.addresses  # what it had while it ran


def _text(html: str) -> str:
    main = html.split('id="main"')[1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main))


def test_the_page_of_a_terminated_server_says_what_it_was_and_who_ended_it(
    launch, access, owner, client_as, django_capture_on_commit_callbacks, mailoutbox
):
    instance, had = _terminated_through_the_portal(launch, access, django_capture_on_commit_callbacks)
    assert had and Instance.objects.get(pk=instance.pk).addresses == []  # released with the server
    assert Operation.objects.get(instance=instance, action="terminate").params["addresses"] == had

    response = client_as(owner).get(instance.get_absolute_url())
    assert response.status_code == 200
    page = response.content.decode()
    text = _text(page)
    assert "web-1 Terminated" in text
    assert f"by {owner.email}" in text
    assert "Starter 2 · 1 vCPU · 2 GiB RAM" in text and "Debian 13" in text and "fra1-a" in text
    assert f"Addresses {had[0]} (released" in text
    assert "Cost in total" in text and "EUR" in text
    # Nothing to do any more: no action, no console, no terminate form.
    assert "instance_action" not in page and "/action/" not in page and "/console/" not in page
    assert "<form" not in page.split('id="main"')[1]

    # The link in the termination e-mail leads here.
    mail = next(m for m in mailoutbox if "was terminated" in m.subject)
    link = settings.PORTAL_BASE_URL + instance.get_absolute_url()
    assert link in mail.body and f'href="{link}"' in mail.alternatives[0][0]


def test_how_long_it_ran_and_what_it_cost_come_from_its_segments(project, owner, client_as, catalog):
    launched = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    ended = launched + timedelta(days=3, hours=2)
    instance = InstanceFactory(project=project, name="batch-7", status="terminated", addresses=[])
    Instance.objects.filter(pk=instance.pk).update(created_at=launched, terminated_at=ended)

    def segment(meter, quantity, price, start, end):
        UsageSegment.objects.create(
            organization=project.organization,
            project=project,
            resource_type="instance",
            resource_id=instance.pk,
            resource_name=instance.name,
            zone=instance.zone,
            meter=meter,
            quantity=Decimal(quantity),
            unit_price=Decimal(price),
            started_at=start,
            ended_at=end,
        )

    # Ran 10 h, then stopped until its end: compute 10 h at 0.011, disk 50 GiB for 74 h at 0.000137.
    segment("compute", 1, "0.011", launched, launched + timedelta(hours=10))
    segment("disk", 50, "0.000137", launched, ended)
    Operation.objects.create(
        instance=instance,
        action="terminate",
        state="succeeded",
        requested_by=owner,
        params={"addresses": ["100.64.0.77"]},
        finished_at=ended,
    )
    text = _text(client_as(owner).get(instance.get_absolute_url()).content.decode())
    assert "Terminated on 5 November 2026 at 10:00 UTC by owner@example.com" in text
    assert "Existed 3 days, 2 hours" in text
    assert "Ran 10.0 h" in text
    assert "Cost in total 0.62 EUR" in text  # 0.11 + 0.5069
    assert "Compute 0.11 · Server disks 0.51 EUR (each rounded)" in text
    assert "Addresses 100.64.0.77 (released" in text


def test_terminated_servers_stay_out_of_the_list(project, owner, client_as):
    instance = InstanceFactory(project=project, name="gone-1", status="terminated")
    InstanceFactory(project=project, name="here-1")
    page = client_as(owner).get(
        reverse("compute:instance_list", args=[project.organization.slug, project.slug])
    )
    assert "here-1" in page.content.decode() and instance.name not in page.content.decode()


def test_the_same_access_rules_as_a_live_server(project, viewer, outsider, client_as, catalog):
    instance = InstanceFactory(project=project, status="terminated")
    assert client_as(viewer).get(instance.get_absolute_url()).status_code == 200
    assert client_as(outsider).get(instance.get_absolute_url()).status_code == 404
    missing = reverse("compute:instance_detail", args=[project.organization.slug, project.slug, uuid.uuid4()])
    assert client_as(viewer).get(missing).status_code == 404


def test_nothing_can_be_done_to_a_terminated_server(project, owner, client_as, catalog):
    instance = InstanceFactory(project=project, status="terminated")
    args = [project.organization.slug, project.slug, instance.pk]
    client = client_as(owner)
    assert client.post(reverse("compute:instance_action", args=args), {"action": "start"}).status_code == 404
    assert (
        client.post(reverse("compute:instance_protection", args=args), {"protected": "1"}).status_code == 404
    )
    assert client.get(reverse("compute:instance_console", args=args)).status_code == 404
    assert not Operation.objects.exists()


def test_a_page_polling_a_server_that_was_terminated_meanwhile_reloads(project, owner, client_as, catalog):
    instance = InstanceFactory(project=project, status="terminated")
    poll = client_as(owner).get(instance.get_absolute_url(), headers={"HX-Request": "true"})
    assert poll.status_code == 200 and poll["HX-Refresh"] == "true"
