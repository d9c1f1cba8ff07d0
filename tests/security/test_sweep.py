"""Security sweep: hostile names are shown escaped everywhere they appear, and anonymous traffic
creates no sessions."""

from __future__ import annotations

import re

import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse

from portal.compute.models import FirewallRuleSet, SshKey, Volume
from portal.tenancy.models import Organization, Project
from tests.factories import InstanceFactory

PAYLOAD = "<script>alert('x')</script><img src=x onerror=alert(1)>\"&"
RAW = re.compile(r"<script>alert|<img src=x onerror")


@pytest.fixture
def hostile(org, project, owner, catalog, django_capture_on_commit_callbacks, mailoutbox, client_as):
    Organization.objects.filter(pk=org.pk).update(name=PAYLOAD)
    Project.objects.filter(pk=project.pk).update(name=PAYLOAD, description=PAYLOAD)
    owner.name = PAYLOAD
    owner.save()
    instance = InstanceFactory(project=project, name="web-1")
    SshKey.objects.create(
        project=project,
        name=PAYLOAD,
        public_key="ssh-ed25519 AAAA",
        key_type="ssh-ed25519",
        bits=256,
        fingerprint="SHA256:x",
    )
    FirewallRuleSet.objects.create(project=project, name=PAYLOAD)
    Volume.objects.create(project=project, name=PAYLOAD, zone=instance.zone, size_gib=10)
    client = client_as(owner)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("tenancy:invitation_create", args=[org.slug]),
            {"email": "guest@example.com", "role": "member"},
        )
    return client, instance


PAGES = [
    ("tenancy:org_dashboard", "org"),
    ("tenancy:members", "org"),
    ("tenancy:audit_log", "org"),
    ("residency:org_residency", "org"),
    ("metering:org_usage", "org"),
    ("tenancy:project_dashboard", "project"),
    ("tenancy:project_settings", "project"),
    ("residency:project_residency", "project"),
    ("compute:instance_list", "project"),
    ("compute:launch", "project"),
    ("compute:ssh_keys", "project"),
    ("compute:firewalls", "project"),
    ("compute:volumes", "project"),
    ("metering:project_usage", "project"),
]


@pytest.mark.parametrize(("name", "scope"), PAGES)
def test_hostile_names_are_escaped_on_every_page(hostile, org, project, name, scope):
    client, _instance = hostile
    args = [org.slug] if scope == "org" else [org.slug, project.slug]
    response = client.get(reverse(name, args=args))
    assert response.status_code == 200
    html = response.content.decode()
    assert not RAW.search(html), f"unescaped payload on {name}"
    assert "&lt;script&gt;" in html or "&lt;img" in html, f"{name} does not show the name at all"


def test_hostile_names_are_escaped_on_the_server_page_and_in_mail(hostile, mailoutbox):
    client, instance = hostile
    html = client.get(instance.get_absolute_url()).content.decode()
    assert not RAW.search(html)
    invitation = mailoutbox[-1]
    html_part = invitation.alternatives[0][0]
    assert not RAW.search(html_part) and "&lt;script&gt;" in html_part
    # The plain-text part is text: the name is shown as typed, which is what a reader expects.
    assert PAYLOAD in invitation.body


def test_a_flood_of_anonymous_requests_creates_no_sessions(db, client):
    for i in range(1000):
        path = ("/", "/accounts/login/", "/healthz", f"/o/org-{i}/")[i % 4]
        assert client.get(path).status_code in (200, 302, 404)
    assert Session.objects.count() == 0
