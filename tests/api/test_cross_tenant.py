"""Another organization's ids answer exactly like ids that do not exist: 404, the same body."""

from __future__ import annotations

import pytest

from portal.api.models import TokenScope
from portal.compute.models import Instance, SshKey, Volume
from tests.api.conftest import assert_problem
from tests.api.world import ENDPOINTS, MISSING, build_world, call
from tests.factories import ProjectFactory

OBJECT_ENDPOINTS = [e for e in ENDPOINTS if "{" in e.path]


@pytest.mark.parametrize("endpoint", OBJECT_ENDPOINTS, ids=lambda e: e.id)
def test_another_organizations_ids_are_404_like_missing_ones(
    endpoint, org, project, outsider, catalog, knobs, token_for
):
    world = build_world(project)
    outsider_org = outsider.memberships.get().organization
    _, api = token_for(outsider, outsider_org, scope=TokenScope.READ_WRITE, billing=True)
    theirs = call(api, endpoint, world, body_values=world)
    missing = call(api, endpoint, MISSING, body_values=world)
    assert_problem(theirs, 404)
    assert_problem(missing, 404)
    assert theirs.content == missing.content


@pytest.mark.parametrize("endpoint", OBJECT_ENDPOINTS, ids=lambda e: e.id)
def test_a_project_bound_token_sees_other_projects_as_missing(
    endpoint, org, project, owner, catalog, knobs, token_for
):
    world = build_world(project)
    elsewhere = ProjectFactory(organization=org, slug="elsewhere")
    _, api = token_for(owner, org, scope=TokenScope.READ_WRITE, billing=True, project=elsewhere)
    theirs = call(api, endpoint, world, body_values=world)
    missing = call(api, endpoint, MISSING, body_values=world)
    assert_problem(theirs, 404)
    assert theirs.content == missing.content


CREATE_ENDPOINTS = {e.path: e for e in ENDPOINTS if e.method == "post" and "{" not in e.path}


@pytest.mark.parametrize("path", ["instances", "ssh-keys", "firewalls", "volumes"])
def test_creating_in_another_organizations_project_is_404(path, project, outsider, catalog, knobs, token_for):
    _, api = token_for(outsider, outsider.memberships.get().organization)
    body = CREATE_ENDPOINTS[path].payload
    theirs = api.post(path, body({"project": project.pk}))
    missing = api.post(path, body({"project": MISSING["project"]}))
    assert_problem(theirs, 404)
    assert theirs.content == missing.content


def test_lists_never_show_another_organizations_rows(org, project, outsider, catalog, knobs, token_for):
    build_world(project)
    _, api = token_for(outsider, outsider.memberships.get().organization, scope=TokenScope.READ)
    for path in ("instances", "ssh-keys", "firewalls", "volumes"):
        assert api.get(path).json()["items"] == [], path
    assert [p["slug"] for p in api.get("projects").json()["items"]] == ["theirs"]
    assert_problem(api.get("instances", project=project.slug), 404)


def test_attaching_another_organizations_server_is_refused(
    org, project, owner, outsider, catalog, knobs, token_for
):
    world = build_world(project)
    other_project = outsider.memberships.get().organization.projects.get()
    other_world = build_world(other_project)
    _, api = token_for(owner, org)
    response = api.post(
        f"volumes/{world['volume']}/actions", {"action": "attach", "instance": str(other_world["instance"])}
    )
    assert_problem(response, 422)
    assert Volume.objects.get(pk=world["volume"]).attached_to is None
    # and a launch can't pick up another project's SSH key
    response = api.post(
        "instances",
        {
            "project": project.pk,
            "name": "web",
            "zone": "fra1-a",
            "flavor": "s-1vcpu-2gb",
            "image": "Debian 13",
            "ssh_keys": [other_world["key"]],
        },
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "ssh_keys"
    assert not Instance.objects.filter(name="web").exists()
    assert SshKey.objects.filter(project=project).count() == 1
