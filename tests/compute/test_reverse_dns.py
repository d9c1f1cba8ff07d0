"""Reverse DNS names for servers' public addresses: set on the server page or through the API,
checked as host names (every problem at once, nothing changed on a bad one), audited, and exported
by operators from admin as JSON and as a zone file."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent
from portal.compute.models import Instance, InstanceStatus, Operation
from portal.compute.reverse_dns import name_problems, normalize
from tests.steps import drive

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(launch):
    batch = launch(name="web-1")
    drive(Operation.objects.get(instance__batch=batch))
    instance = Instance.objects.get(batch=batch)
    assert instance.status == InstanceStatus.RUNNING and instance.public_address
    return instance


def _url(instance) -> str:
    project = instance.project
    return reverse(
        "compute:instance_reverse_dns", args=[project.organization.slug, project.slug, instance.pk]
    )


def _page(instance) -> str:
    project = instance.project
    return reverse("compute:instance_detail", args=[project.organization.slug, project.slug, instance.pk])


@pytest.mark.parametrize(
    "name", ["web-1.example.com", "a.b", "mail.xn--bcher-kva.example", "x" * 63 + ".example.com"]
)
def test_host_names_are_accepted(name):
    assert name_problems(normalize(name)) == []


def test_a_name_is_kept_in_lower_case_without_the_roots_dot():
    assert normalize("  Web-1.Example.COM. ") == "web-1.example.com"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("localhost", "full host name with its domain"),
        ("-web.example.com", "'-web' is not"),
        ("web_1.example.com", "'web_1' is not"),
        ("web..example.com", "'' is not"),
        ("web.example.123", "is not a number"),
        ("x" * 64 + ".example.com", "1 to 63"),
        (("a" * 60 + ".") * 5 + "com", "at most 253 characters"),
        ("web 1.example.com", "'web 1' is not"),
    ],
)
def test_what_is_not_a_host_name_is_refused_with_the_reason(name, problem):
    problems = name_problems(normalize(name))
    assert any(problem in text for text in problems), problems


def test_every_problem_of_a_name_at_once():
    assert len(name_problems("x" * 254 + "_")) == 3  # too long, one label only, a bad label


def test_the_owner_sets_and_clears_the_name_and_each_change_is_audited(server, client_as, owner):
    client = client_as(owner)

    answer = client.post(_url(server), {"reverse_dns": "Web-1.Example.com."}, follow=True)

    server.refresh_from_db()
    assert server.reverse_dns == "web-1.example.com"
    assert f"{server.public_address} now points back to web-1.example.com." in answer.content.decode()
    client.post(_url(server), {"reverse_dns": "web-1.example.com"})  # the same again: nothing to record
    client.post(_url(server), {"reverse_dns": ""})
    server.refresh_from_db()
    assert server.reverse_dns == ""
    changes = [
        event.changes["reverse_dns"]
        for event in AuditEvent.objects.filter(action=AuditAction.INSTANCE_REVERSE_DNS).order_by("created_at")
    ]
    assert changes == [[None, "web-1.example.com"], ["web-1.example.com", None]]


def test_a_bad_name_shows_every_problem_beside_the_field_and_changes_nothing(server, client_as, owner):
    server.reverse_dns = "web-1.example.com"
    server.save(update_fields=["reverse_dns"])

    answer = client_as(owner).post(_url(server), {"reverse_dns": "-bad_name"})

    assert answer.status_code == 400
    page = answer.content.decode()
    assert "Give a full host name with its domain" in page and "&#x27;-bad_name&#x27; is not" in page
    assert 'value="-bad_name"' in page and 'aria-invalid="true"' in page  # what was typed stays
    server.refresh_from_db()
    assert server.reverse_dns == "web-1.example.com"
    assert not AuditEvent.objects.filter(action=AuditAction.INSTANCE_REVERSE_DNS).exists()


def test_viewers_and_outsiders_may_not_set_it(server, client_as, users):
    assert (
        client_as(users["viewer"]).post(_url(server), {"reverse_dns": "web-1.example.com"}).status_code == 403
    )
    assert (
        client_as(users["outsider"]).post(_url(server), {"reverse_dns": "web-1.example.com"}).status_code
        == 404
    )
    assert "Reverse DNS" not in client_as(users["viewer"]).get(_page(server)).content.decode()  # none set
    server.refresh_from_db()
    assert server.reverse_dns == ""


def test_a_server_without_a_public_address_has_none(launch, client_as, owner):
    building = Instance.objects.get(batch=launch(name="web-2"))
    assert not building.public_address

    answer = client_as(owner).post(_url(building), {"reverse_dns": "web-2.example.com"})

    assert answer.status_code == 409
    assert "has no public address yet" in answer.content.decode()


def test_operators_export_the_names_as_json_and_as_a_zone_file(server, launch, admin_client):
    other = Instance.objects.get(batch=launch(name="web-2"))
    drive(Operation.objects.get(instance=other))
    other.refresh_from_db()
    gone = Instance.objects.get(batch=launch(name="web-3"))
    Instance.objects.filter(pk=server.pk).update(reverse_dns="web-1.example.com")
    Instance.objects.filter(pk=other.pk).update(reverse_dns="web-2.example.com")
    Instance.objects.filter(pk=gone.pk).update(
        reverse_dns="web-3.example.com", status=InstanceStatus.TERMINATED
    )
    changelist = reverse("admin:compute_instance_changelist")
    selected = [str(pk) for pk in Instance.objects.values_list("pk", flat=True)]

    exported = admin_client.post(
        changelist, {"action": "export_reverse_dns_json", "_selected_action": selected}
    )
    zone = admin_client.post(changelist, {"action": "export_reverse_dns_zone", "_selected_action": selected})

    assert exported["Content-Disposition"] == 'attachment; filename="reverse-dns.json"'
    records = exported.json()["records"]
    assert {(r["address"], r["name"]) for r in records} == {
        (server.public_address, "web-1.example.com"),
        (other.public_address, "web-2.example.com"),
    }
    first = next(r for r in records if r["name"] == "web-1.example.com")
    assert first["pointer"] == ".".join(reversed(server.public_address.split("."))) + ".in-addr.arpa"
    assert (first["organization"], first["project"], first["zone"]) == ("acme", server.project.slug, "fra1-a")
    lines = zone.content.decode().splitlines()
    assert lines[1] == "$TTL 3600"
    assert f"{first['pointer']}. IN PTR web-1.example.com. ; acme/{server.project.slug} {server.pk}" in lines
    assert "web-3.example.com" not in zone.content.decode()  # terminated: not published
