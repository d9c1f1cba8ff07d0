"""Prepared queries (portal.core.prepared) return what their queryset would, or refuse."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.urls import reverse

from portal.core.prepared import PreparedQuery
from portal.tenancy.models import Membership, Project
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory


def _projects(org_id, prefix):
    return Project.objects.filter(organization_id=org_id, slug__startswith=prefix).values_list("slug", "name")


def test_rows_are_the_querysets_for_any_values(db):
    query = PreparedQuery(
        lambda org_id, name: (
            Project.objects.filter(organization_id=org_id, name=name)
            .order_by("slug")
            .values_list("slug", "created_at", "quota_vcpus")
        ),
        org_id=-90_001,
        name="stand-in%_\\",
    )
    a, b = OrganizationFactory(), OrganizationFactory()
    for org, slug in ((a, "x"), (a, "y"), (b, "z")):
        ProjectFactory(organization=org, slug=slug, name="Same name")
    for org in (a, b):
        expected = list(
            Project.objects.filter(organization_id=org.pk, name="Same name")
            .order_by("slug")
            .values_list("slug", "created_at", "quota_vcpus")
        )
        assert query.rows(org_id=org.pk, name="Same name") == expected
        assert expected and expected[0][1].tzinfo is not None  # converted as the ORM converts
    assert query.rows(org_id=a.pk, name="Other name") == []


def test_datetime_values_are_sent_as_the_database_takes_them(db):
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    def created_between(since, until):
        return (
            Project.objects.filter(created_at__gte=since, created_at__lt=until)
            .order_by("created_at")
            .values_list("slug", "created_at")
        )

    query = PreparedQuery(
        created_between,
        since=datetime(1901, 2, 3, 4, 5, 6, tzinfo=UTC),
        until=datetime(1902, 3, 4, tzinfo=UTC),
    )
    for slug in "abc":
        ProjectFactory(slug=slug)
    times = list(Project.objects.order_by("created_at").values_list("created_at", flat=True))
    berlin = ZoneInfo("Europe/Berlin")
    for since, until in (
        (times[0], times[2]),
        (times[1], times[2] + timedelta(seconds=1)),
        (times[2], times[0]),
        (times[1].astimezone(berlin), times[2].astimezone(berlin)),
    ):
        assert query.rows(since=since, until=until) == list(created_between(since, until))
    assert [slug for slug, _ in query.rows(since=times[0], until=times[2])] == ["a", "b"]
    # The same moment in another time zone selects the same rows.
    assert [slug for slug, _ in query.rows(since=times[1].astimezone(berlin), until=times[2])] == ["b"]


def test_a_transformed_or_missing_stand_in_is_refused(db):
    # startswith turns the value into a LIKE pattern: the SQL could not be reused with another.
    with pytest.raises(ValueError, match="transformed"):
        PreparedQuery(_projects, org_id=-90_002, prefix="stand-in%_\\").rows(org_id=1, prefix="a")
    with pytest.raises(ValueError, match="does not use"):
        PreparedQuery(
            lambda org_id, unused: Project.objects.filter(organization_id=org_id).values_list("pk"),
            org_id=-90_003,
            unused="stand-in",
        ).rows(org_id=1, unused="x")


def test_the_unconfirmed_address_banner_is_not_fooled_by_like_patterns(db, client):
    # "a_b" as a LIKE pattern would match the confirmed "axb": the frame compares addresses.
    user = UserFactory(email="a_b@example.com")
    EmailAddress.objects.filter(user=user).update(verified=False)
    EmailAddress.objects.create(user=user, email="axb@example.com", verified=True)
    membership = MembershipFactory(user=user)
    project = ProjectFactory(organization=membership.organization)
    client.force_login(user)
    page = client.get(reverse("tenancy:project_dashboard", args=[membership.organization.slug, project.slug]))
    assert "Confirm your e-mail address (a_b@example.com)" in page.content.decode()
    EmailAddress.objects.filter(email="a_b@example.com").update(verified=True)
    page = client.get(reverse("tenancy:project_dashboard", args=[membership.organization.slug, project.slug]))
    assert "Confirm your e-mail address" not in page.content.decode()
    assert Membership.objects.filter(user=user).count() == 1


def test_a_query_whose_sql_depends_on_its_values_is_refused(db):
    # As a None that becomes IS NULL would: the SQL built around one value fits no other.
    query = PreparedQuery(
        lambda name: Project.objects.filter(**{"name" if name.endswith("~") else "slug": name}).values_list(
            "pk"
        ),
        name="stand-in",
    )
    with pytest.raises(ValueError, match="depends on the values"):
        query.rows(name="x")
