"""A terminated server through the API: still readable (200, status terminated), as its web page
is, but not listed, and nothing can be done to it (404)."""

from __future__ import annotations

from portal.compute.models import Operation
from tests.api.conftest import assert_problem
from tests.factories import InstanceFactory


def test_a_terminated_server_is_read_with_its_status_and_nothing_more_is_done_to_it(owner_api, project):
    instance = InstanceFactory(project=project, name="gone-1", status="terminated", addresses=[])
    answer = owner_api.get(f"instances/{instance.pk}")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["name"], body["status"], body["addresses"], body["ssh_command"]) == (
        "gone-1",
        "terminated",
        [],
        "",
    )
    assert "gone-1" not in [i["name"] for i in owner_api.get("instances").json()["items"]]
    assert_problem(owner_api.post(f"instances/{instance.pk}/actions", {"action": "start"}), 404)
    assert_problem(owner_api.patch(f"instances/{instance.pk}", {"termination_protection": True}), 404)
    assert_problem(owner_api.delete(f"instances/{instance.pk}"), 404)
    assert not Operation.objects.exists()


def test_another_organizations_terminated_server_is_a_404(owner_api, outsider):
    theirs = InstanceFactory(
        project=outsider.memberships.get().organization.projects.get(), status="terminated"
    )
    assert_problem(owner_api.get(f"instances/{theirs.pk}"), 404)
