"""Every endpoint by token scope (read, read-write, with or without billing) and reach (organization-wide, bound to
this project, bound to another project): the token's scope narrows its owner's role, never widens it."""

from __future__ import annotations

import pytest

from portal.api.models import TokenScope
from tests.api.conftest import assert_problem
from tests.api.world import ENDPOINTS, build_world, call
from tests.factories import ProjectFactory

VARIANTS = {
    "read/org": {"scope": TokenScope.READ},
    "read-write/org": {"scope": TokenScope.READ_WRITE},
    "read/project": {"scope": TokenScope.READ, "bound": "this"},
    "read-write/project": {"scope": TokenScope.READ_WRITE, "bound": "this"},
    "read-write+billing/org": {"scope": TokenScope.READ_WRITE, "billing": True},
    "read+billing/project": {"scope": TokenScope.READ, "billing": True, "bound": "this"},
    "read-write+billing/other-project": {"scope": TokenScope.READ_WRITE, "billing": True, "bound": "other"},
}


def expected(kind: str, variant: dict) -> int | str:
    """'ok' (2xx), 403 or 404."""
    writes = variant["scope"] == TokenScope.READ_WRITE
    billing = variant.get("billing", False)
    if kind in ("catalog", "list"):
        return "ok"  # a list only shows what the token reaches; the catalog is the same for all
    if variant.get("bound") == "other":
        return 404
    if kind == "read":
        return "ok"
    if kind == "write":
        return "ok" if writes else 403
    if kind == "billing-read":
        return "ok" if billing else 403
    if kind == "billing-write":
        return "ok" if billing and writes else 403
    raise AssertionError(kind)


@pytest.mark.parametrize("variant_name", list(VARIANTS))
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_scope_matrix(endpoint, variant_name, org, project, owner, catalog, knobs, token_for):
    variant = VARIANTS[variant_name]
    other = ProjectFactory(organization=org, slug="other-project")
    world = build_world(project)
    bound = {"this": project, "other": other}.get(variant.get("bound"))
    _, api = token_for(
        owner, org, scope=variant["scope"], billing=variant.get("billing", False), project=bound
    )
    response = call(api, endpoint, world)
    want = expected(endpoint.kind, variant)
    if want == "ok":
        assert 200 <= response.status_code < 300, (response.status_code, response.content)
    else:
        body = assert_problem(response, want)
        if want == 403:
            assert "token" in body["detail"]  # the token's scope, not the role, is what refuses


def test_lists_of_a_project_bound_token_show_only_its_project(org, project, owner, catalog, knobs, token_for):
    other = ProjectFactory(organization=org, slug="other-project")
    build_world(project)
    build_world(other)
    _, api = token_for(owner, org, scope=TokenScope.READ, project=other)
    for path in ("instances", "ssh-keys", "firewalls", "volumes", "projects"):
        items = api.get(path).json()["items"]
        assert items
        assert {item.get("project", item.get("id")) for item in items} == {other.pk}, path
    assert_problem(api.get("instances", project=project.slug), 404)


# --- the owner's role is the ceiling, read at every request --------------------------------------


def test_a_viewers_read_write_token_cannot_change_anything(org, project, viewer, catalog, knobs, token_for):
    world = build_world(project)
    _, api = token_for(viewer, org, scope=TokenScope.READ_WRITE, billing=True)
    for endpoint in ENDPOINTS:
        response = call(api, endpoint, world)
        if endpoint.kind in ("write", "billing-write"):
            body = assert_problem(response, 403)
            assert "Viewer" in body["detail"], endpoint.id
        else:
            assert response.status_code < 300, endpoint.id


def test_a_members_billing_token_reads_costs_but_cannot_set_the_budget(
    org, project, member, catalog, knobs, token_for
):
    _, api = token_for(member, org, scope=TokenScope.READ_WRITE, billing=True)
    assert api.get(f"projects/{project.pk}/budget").status_code == 200
    assert api.get(f"projects/{project.pk}/usage").json()["costs_included"] is True
    body = assert_problem(api.put(f"projects/{project.pk}/budget", {"amount": "10"}), 403)
    assert "Member" in body["detail"]


def test_usage_without_billing_has_hours_but_no_money(org, project, owner, catalog, knobs, token_for):
    _, api = token_for(owner, org, scope=TokenScope.READ)
    usage = api.get(f"projects/{project.pk}/usage", period="7d").json()
    assert usage["costs_included"] is False
    assert usage["cost"] is None and usage["cost_by_meter"] is None
    assert "cost" not in usage["totals"] and "vcpu_hours" in usage["totals"]
    assert len(usage["days"]) == len(usage["vcpu_hours"]) == 7


def test_a_downgraded_owner_loses_the_rights_at_once(
    org, project, owner, admin_user, catalog, knobs, token_for
):
    from portal.tenancy.models import Membership, Role

    _, api = token_for(owner, org, scope=TokenScope.READ_WRITE)
    world = build_world(project)
    Membership.objects.filter(user=owner, organization=org).update(role=Role.VIEWER)
    body = assert_problem(api.post(f"instances/{world['instance']}/actions", {"action": "stop"}), 403)
    assert "Viewer" in body["detail"]
    assert api.get(f"instances/{world['instance']}").status_code == 200


def test_a_token_never_manages_members_or_tokens():
    from portal.api.access import token_perms
    from portal.api.models import ApiToken
    from portal.tenancy.access import Perm

    strongest = token_perms(ApiToken(scope=TokenScope.READ_WRITE, billing=True))
    forbidden = {
        Perm.MEMBERS_MANAGE,
        Perm.OWNERS_MANAGE,
        Perm.ORG_EDIT,
        Perm.POLICY_EDIT,
        Perm.PROJECT_CREATE,
        Perm.PROJECT_DELETE,
        Perm.AUDIT_VIEW,
    }
    assert not strongest & forbidden
    assert Perm.BILLING_VIEW not in token_perms(ApiToken(scope=TokenScope.READ_WRITE, billing=False))
