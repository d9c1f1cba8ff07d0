"""Residency attestation: verdicts from where resources were and the policy in force at the time."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.audit.models import AuditEvent
from portal.catalog.models import Jurisdiction, Region
from portal.residency.services import policy_update
from portal.statements.attestation import attestation_build
from portal.tenancy.access import Perm, org_access, project_access
from portal.tenancy.models import Organization
from tests.factories import InstanceFactory
from tests.statements.helpers import clock, make_segment


def set_policy(user, org, when, *, project=None, name="EU only", jurisdictions=("eu",), regions=()):
    """Change a residency policy through the service, as if at `when` (its audit event included)."""
    access = (
        project_access(user, org.slug, project.slug, Perm.POLICY_EDIT)
        if project
        else org_access(user, org.slug, Perm.POLICY_EDIT)
    )
    with clock(when):
        policy_update(
            access=access,
            name=name,
            jurisdictions=list(Jurisdiction.objects.filter(code__in=jurisdictions)),
            regions=list(Region.objects.filter(code__in=regions)),
            certifications=[],
        )


def server(project, zone, *, since, name):
    """A server that has existed (and run) since `since` in `zone`: its disk and compute segments."""
    instance = InstanceFactory(project=project, zone=zone, name=name)
    for meter, quantity in (("disk", "50"), ("compute", "1")):
        make_segment(
            project,
            zone,
            start=since,
            end=None,
            meter=meter,
            quantity=quantity,
            resource_id=instance.pk,
            name=name,
        )
    return instance


def _url(org, project=None, **query):
    if project is None:
        url = reverse("statements:org_attestation", args=[org.slug])
    else:
        url = reverse("statements:project_attestation", args=[org.slug, project.slug])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def test_a_compliant_history(org, project, owner, catalog, last_month, client_as):
    start, end = last_month
    set_policy(owner, org, start - timedelta(days=30))
    server(project, catalog["fra1-a"], since=start - timedelta(days=20), name="web-1")
    volume_id = server(project, catalog["ams1-a"], since=start + timedelta(days=3), name="data").pk

    attestation = attestation_build(organization=org, start=start, end=end)
    assert attestation.compliant
    assert attestation.is_final
    assert [r.name for r in attestation.resources] == ["data", "web-1"]
    web = attestation.resources[1]
    assert [(p.zone.code, p.start, p.end, p.allowed) for p in web.placements] == [
        ("fra1-a", start, end, True)
    ]
    assert "Organization policy 'EU only': jurisdictions European Union" in web.placements[0].policy
    assert attestation.resources[0].placements[0].start == start + timedelta(days=3)
    assert attestation.resources[0].resource_id == str(volume_id)
    assert not attestation.warnings

    last_day = (end - timedelta(days=1)).date()
    response = client_as(owner).get(_url(org, **{"from": start.date(), "to": last_day}))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Compliant" in body and "Not compliant" not in body
    assert attestation.content_hash in body


def test_a_server_in_ashburn_under_an_eu_only_policy_is_not_compliant(
    org, project, owner, catalog, last_month, client_as
):
    start, end = last_month
    set_policy(owner, org, start - timedelta(days=30))
    server(project, catalog["fra1-a"], since=start - timedelta(days=20), name="web-1")
    server(project, catalog["iad1-a"], since=start + timedelta(days=5), name="ash-1")

    attestation = attestation_build(organization=org, project=project, start=start, end=end)
    assert not attestation.compliant
    verdicts = {r.name: r.compliant for r in attestation.resources}
    assert verdicts == {"ash-1": False, "web-1": True}
    ashburn = next(r for r in attestation.resources if r.name == "ash-1").placements
    assert [(p.zone.region.name, p.allowed) for p in ashburn] == [("Ashburn", False)]
    assert "Ashburn is in United States jurisdiction (allowed: European Union)" in ashburn[0].reasons

    body = client_as(owner).get(_url(org, project)).content.decode()
    assert "Not compliant" in body
    assert "Ashburn is in United States jurisdiction" in body


def test_a_policy_tightened_mid_period(org, project, owner, catalog, last_month):
    start, end = last_month
    tightened = start + timedelta(days=10, hours=6)
    set_policy(owner, org, start - timedelta(days=40), name="Anywhere", jurisdictions=())
    server(project, catalog["iad1-a"], since=start - timedelta(days=20), name="ash-1")
    set_policy(owner, org, tightened)  # EU only, while the server keeps running in Ashburn
    set_policy(owner, org, end + timedelta(days=2), name="EU and Switzerland", jurisdictions=("eu", "ch"))

    attestation = attestation_build(organization=org, start=start, end=end)
    (resource,) = attestation.resources
    assert [(p.start, p.end, p.allowed) for p in resource.placements] == [
        (start, tightened, True),
        (tightened, end, False),
    ]
    assert "'Anywhere': no restrictions" in resource.placements[0].policy
    assert "'EU only': jurisdictions European Union;" in resource.placements[1].policy
    assert not resource.compliant
    assert not attestation.compliant
    assert [(c.at, c.scope) for c in attestation.changes] == [(tightened, "organization")]
    assert attestation.changes[0].text.startswith(
        "name: Anywhere → EU only; jurisdictions: any → European Union"
    )
    # The policy at the end of the period is the reconstructed one, not today's (EU + Switzerland).
    assert attestation.policy_at_end[0][1].startswith("organization policy 'EU only'")
    assert not attestation.warnings


def test_a_project_policy_applies_on_top_of_the_organizations(org, project, owner, catalog, last_month):
    start, end = last_month
    server(project, catalog["ams1-a"], since=start - timedelta(days=20), name="ams-1")
    set_policy(owner, org, start + timedelta(days=2), project=project, name="Frankfurt", regions=("fra1",))

    attestation = attestation_build(organization=org, project=project, start=start, end=end)
    (resource,) = attestation.resources
    assert [p.allowed for p in resource.placements] == [True, False]
    assert "not one of the allowed regions (Frankfurt)" in resource.placements[1].reasons
    assert [c.scope for c in attestation.changes] == ["project Web shop"]


def test_a_server_that_never_ran_is_listed_from_its_record(org, project, owner, catalog, last_month):
    start, end = last_month
    failed = InstanceFactory(project=project, zone=catalog["iad1-a"], name="failed-1", status="error")
    type(failed).objects.filter(pk=failed.pk).update(created_at=start + timedelta(days=4))
    set_policy(owner, org, start - timedelta(days=1))
    attestation = attestation_build(organization=org, start=start, end=end)
    (resource,) = attestation.resources
    assert resource.source == "record"
    assert resource.placements[0].start == start + timedelta(days=4)
    assert not resource.compliant  # placed (or about to be) in Ashburn under EU only


def test_the_csv_hash_is_the_hash_of_everything_but_its_last_line(
    org, project, owner, catalog, last_month, client_as
):
    start, end = last_month
    set_policy(owner, org, start + timedelta(days=12))
    server(project, catalog["iad1-a"], since=start - timedelta(days=20), name="ash-1")
    client = client_as(owner)
    query = {"from": start.date().isoformat(), "to": (end - timedelta(days=1)).date().isoformat()}

    response = client.get(_url(org, project, **query, format="csv"))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith(
        'attachment; filename="residency-attestation-acme-web-shop-'
    )
    text = response.content.decode()
    body, last = text[: text.rstrip("\n").rfind("\n") + 1], text.rstrip("\n").rsplit("\n", 1)[1]
    label, printed = next(csv.reader([last]))
    assert label == "SHA-256 of all lines above"
    assert hashlib.sha256(body.encode()).hexdigest() == printed
    # The HTML page prints the same hash, and downloading again gives the same document.
    assert printed in client.get(_url(org, project, **query)).content.decode()
    assert client.get(_url(org, project, **query, format="csv")).content.decode() == text

    rows = list(csv.reader(io.StringIO(body)))
    assert ["Overall verdict", "NOT COMPLIANT"] in rows
    header = rows.index(next(r for r in rows if r[:2] == ["Project", "Resource type"]))
    placements = rows[header + 1 :]
    assert [(r[3], r[4], r[6], r[10]) for r in placements] == [
        ("ash-1", "iad1-a", "United States", "allowed"),
        ("ash-1", "iad1-a", "United States", "NOT ALLOWED"),
    ]


def test_it_opens_on_this_month_so_far_with_earlier_months_to_pick(org, project, owner, catalog, client_as):
    """A new organization's first look is its month so far, not an empty last month."""
    now = timezone.now()
    today = now.date()
    Organization.objects.filter(pk=org.pk).update(created_at=now - timedelta(days=70))
    server(project, catalog["fra1-a"], since=now - timedelta(minutes=5), name="web-1")

    response = client_as(owner).get(_url(org))

    assert response.status_code == 200
    page = response.content.decode()
    assert f'attestation-period">{today:%B %Y} so far<br>' in page
    assert "web-1" in page and "No servers, volumes, snapshots or images in this period" not in page
    assert f'value="{today.replace(day=1).isoformat()}"' in page and f'value="{today.isoformat()}"' in page
    # The months before it, back to the organization's first, are a click away.
    links = re.findall(r'<a class="segment" href="\?from=([\d-]+)&amp;to=([\d-]+)"', page)
    assert links[0] == (today.replace(day=1).isoformat(), today.isoformat())
    last = today.replace(day=1) - timedelta(days=1)
    assert links[1] == (last.replace(day=1).isoformat(), last.isoformat())
    assert len(links) in (3, 4)  # 70 days back reaches two or three months before this one
    earlier = client_as(owner).get(_url(org, **{"from": links[1][0], "to": links[1][1]})).content.decode()
    assert f'attestation-period">{last:%B %Y}<br>' in earlier


@pytest.mark.parametrize(
    "query",
    [
        {"from": "2026-02-30", "to": "2026-03-05"},
        {"from": "yesterday", "to": "2026-03-05"},
        {"from": "2026-03-10", "to": "2026-03-01"},
        {"from": "2025-01-01", "to": "2026-03-01"},  # over 400 days
        {"from": "2026-03-01"},  # one date only
        {"to": "2026-03-01"},
    ],
    ids=str,
)
def test_bad_dates_are_a_400(org, project, owner, catalog, client_as, query):
    for url in (_url(org, **query), _url(org, project, **query), _url(org, **query, format="csv")):
        response = client_as(owner).get(url)
        assert response.status_code == 400
        assert b"<form" in response.content


def test_a_period_ending_in_the_future_is_a_400(org, owner, catalog, client_as):
    tomorrow = (timezone.now() + timedelta(days=1)).date()
    response = client_as(owner).get(_url(org, **{"from": tomorrow.replace(day=1), "to": tomorrow}))
    assert response.status_code == 400
    assert b"can&#x27;t end after today" in response.content


def test_a_period_up_to_today_is_not_final(org, project, owner, catalog, client_as):
    today = timezone.now().date()
    server(project, catalog["fra1-a"], since=timezone.now() - timedelta(days=3), name="web-1")
    response = client_as(owner).get(_url(org, **{"from": today - timedelta(days=7), "to": today}))
    assert response.status_code == 200
    assert b"Not final." in response.content


def test_owners_and_admins_may_read_members_and_viewers_may_not(
    org, project, owner, admin_user, member, viewer, outsider, catalog, client_as
):
    for url in (_url(org), _url(org, project)):
        assert client_as(owner).get(url).status_code == 200
        assert client_as(admin_user).get(url).status_code == 200
        assert client_as(member).get(url).status_code == 403
        assert client_as(viewer).get(url).status_code == 403
        assert client_as(outsider).get(url).status_code == 404
        assert client_as(owner).post(url).status_code == 405


def test_an_unaudited_change_is_reported_not_hidden(org, project, owner, catalog, last_month):
    start, end = last_month
    server(project, catalog["fra1-a"], since=start - timedelta(days=20), name="web-1")
    set_policy(owner, org, start + timedelta(days=3))
    set_policy(owner, org, start + timedelta(days=10), name="EU and CH", jurisdictions=("eu", "ch"))
    # A rename in the catalog is not audited: the audit log's older names no longer match.
    Jurisdiction.objects.filter(code="eu").update(name="European Union (EEA)")
    attestation = attestation_build(organization=org, start=start, end=end)
    assert any("without an audit event" in w for w in attestation.warnings)
    assert any("'European Union'" in w and "catalog doesn't have" in w for w in attestation.warnings)
    # Between the two changes the old name matches nothing: the conservative reading, reported.
    (resource,) = attestation.resources
    assert [p.allowed for p in resource.placements] == [True, False, True]
    assert AuditEvent.objects.count() == 2
