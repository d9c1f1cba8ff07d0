"""Servers through the API: the launch wizard's rules and reasons, cursor pages, actions, terminate."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.audit.models import AuditEvent
from portal.catalog.models import Flavor, Image, Jurisdiction
from portal.compute.models import Instance, Operation
from portal.residency.models import ResidencyPolicy
from tests.api.conftest import assert_problem, launch_body
from tests.factories import InstanceFactory
from tests.steps import drive


def _settle(operation_ids) -> None:
    drive(*operation_ids)


def test_launch_twenty_poll_until_running_then_terminate(owner_api, project, settings):
    settings.COMPUTE_MAX_LAUNCH_COUNT = 20
    project.quota_instances, project.quota_vcpus, project.quota_ram_gib = 20, 40, 80
    project.save()
    launched = owner_api.post("instances", launch_body(project, count=20))
    assert launched.status_code == 202
    body = launched.json()
    assert [i["name"] for i in body["instances"]] == [f"web-{n}" for n in range(1, 21)]
    operation = owner_api.get(
        body["instances"][0]["operation"]["url"].removeprefix("http://testserver")
    ).json()
    assert operation["state"] == "pending" and operation["action"] == "create"
    _settle(i["operation"]["id"] for i in body["instances"])
    assert owner_api.get(f"operations/{operation['id']}").json()["state"] == "succeeded"
    running = owner_api.get("instances", status="running", limit=100).json()["items"]
    assert len(running) == 20 and all(i["addresses"] for i in running)
    ops = [owner_api.delete(f"instances/{i['id']}").json()["operation"]["id"] for i in running]
    _settle(ops)
    assert owner_api.get("instances").json()["items"] == []
    assert Instance.objects.filter(project=project, status="terminated").count() == 20
    assert (
        AuditEvent.objects.filter(action="instance.launched", actor__email="owner@example.com").count() == 1
    )


def test_a_forbidden_zone_is_refused_with_the_placement_reason_as_in_the_wizard(
    owner_api, org, project, owner, client_as, catalog
):
    policy = ResidencyPolicy.objects.create(organization=org, name="EU only")
    policy.jurisdictions.set(Jurisdiction.objects.filter(code="eu"))
    body = assert_problem(owner_api.post("instances", launch_body(project, zone="iad1-a")), 403)
    assert body["detail"].startswith("Blocked by organization policy")
    assert "Ashburn" in body["detail"]
    assert body["errors"] == [{"field": "zone", "message": body["detail"]}]
    assert not Instance.objects.exists()
    # the web wizard says the same words, and both refusals are audited
    page = client_as(owner).post(
        reverse("compute:launch", args=[org.slug, project.slug]),
        {
            "name": "web",
            "count": 1,
            "zone": catalog["iad1-a"].pk,
            "image": Image.objects.get(name="Debian 13").pk,
            "flavor": Flavor.objects.get(code="s-1vcpu-2gb").pk,
            "allow_all_inbound": "on",
        },
    )
    assert page.status_code == 403
    assert body["detail"] in page.content.decode().replace("&#x27;", "'")
    assert AuditEvent.objects.filter(action="residency.placement_denied").count() == 2


def test_over_quota_gives_the_quota_reason(owner_api, project):
    project.quota_instances = 2
    project.save()
    body = assert_problem(owner_api.post("instances", launch_body(project, count=3)), 403)
    assert body["detail"].startswith("This is over the project's quota (instances: needs 3, 2 left of 2)")
    assert body["title"] == "Over quota"
    assert not Instance.objects.exists()


@pytest.mark.parametrize(
    ("change", "field", "status", "message"),
    [
        ({"name": "Web Server!"}, "name", 422, "Use lower-case letters"),
        ({"count": 0}, "count", 422, "Launch between 1 and 20 servers"),
        ({"count": 10**30}, "count", 422, "Launch between 1 and 20 servers"),
        ({"root_disk_gib": 10**30}, "root_disk_gib", 422, "at most 4096 GiB"),
        ({"root_disk_gib": 4097}, "root_disk_gib", 422, "at most 4096 GiB"),
        ({"name": "a" * 300}, "name", 422, "at most 63 characters"),
        ({"count": 21}, "count", 422, "Launch between 1 and 20 servers"),
        ({"flavor": "m-32vcpu-128gb", "zone": "ams1-a"}, "flavor", 422, "not offered in ams1-a"),
        ({"flavor": "no-such-size"}, "flavor", 422, "No size"),
        ({"image": "Windows Server 2025", "root_disk_gib": 30}, "root_disk_gib", 422, "at least 50 GiB"),
        ({"image": "Plan 9"}, "image", 422, "No image"),
        ({"user_data": "x" * (16 * 1024 + 1)}, "user_data", 422, "the limit is 16 KiB"),
        ({"zone": "par1-b"}, "zone", 409, "sold out"),
        ({"zone": "nowhere-1"}, "zone", 422, "No zone"),
        ({"firewall": 987654}, "firewall", 422, "firewall of this project"),
    ],
)
def test_bad_launches_name_the_field_and_create_nothing(owner_api, project, change, field, status, message):
    body = assert_problem(owner_api.post("instances", launch_body(project) | change), status)
    assert message in body["detail"] or message in str(body.get("errors"))
    if status == 422:
        assert field in [e["field"] for e in body["errors"]]
    assert not Instance.objects.exists()


def test_one_answer_lists_every_problem_of_a_launch(owner_api, project):
    """Not one problem per attempt: the 422 names each field that is wrong, lookups included."""
    body = assert_problem(
        owner_api.post(
            "instances",
            launch_body(
                project,
                count=500,
                name="a" * 300,
                root_disk_gib=5,
                user_data="x" * 20_000,
                ssh_keys=["nobody's"],
                image="Plan 9",
            ),
        ),
        422,
    )
    fields = [e["field"] for e in body["errors"]]
    assert sorted(fields) == ["count", "image", "name", "root_disk_gib", "ssh_keys", "user_data"]
    assert body["detail"] == "Some fields are missing or invalid; see errors."
    assert "at least 50 GiB" in str(body["errors"])  # Starter 2's disk, the image being unknown
    assert not Instance.objects.exists()


def test_the_schema_documents_the_bounds_the_service_checks(owner_api, settings):
    from portal.api.api import api

    launch = api.get_openapi_schema()["components"]["schemas"]["LaunchIn"]["properties"]
    assert launch["root_disk_gib"]["maximum"] == 4096
    assert launch["count"]["maximum"] == settings.COMPUTE_MAX_LAUNCH_COUNT
    assert launch["name"]["maxLength"] == 63


def test_image_by_id_keys_by_name_and_the_default_disk(owner_api, project, catalog):
    key = owner_api.post(
        "ssh-keys",
        {
            "project": project.pk,
            "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx0ctUYh4bn/lOm/GXl9lZtN0mRRlWwwQxGD1fWqWeP a@b",
            "name": "laptop",
        },
    ).json()
    windows = Image.objects.get(name="Windows Server 2025")
    response = owner_api.post(
        "instances", launch_body(project, image=windows.pk, ssh_keys=["laptop"], flavor="s-2vcpu-4gb")
    )
    assert response.status_code == 202, response.content
    instance = Instance.objects.get()
    assert instance.image == windows
    assert instance.root_disk_gib == max(windows.min_disk_gib, instance.flavor.root_disk_gib)
    assert list(instance.ssh_keys.values_list("pk", flat=True)) == [key["id"]]


def test_list_filters_and_cursor_pages(owner_api, project, catalog):
    for n in range(7):
        InstanceFactory(project=project, name=f"app-{n}", status="running" if n % 2 else "stopped")
    InstanceFactory(project=project, name="db-1", zone=catalog["ams1-a"])
    InstanceFactory(project=project, name="gone", status="terminated")
    seen, url, pages = [], "instances", 0
    query = {"limit": 3}
    while url:
        page = owner_api.get(url, **query).json()
        seen += [i["name"] for i in page["items"]]
        url = page["next"] and page["next"].removeprefix("http://testserver")
        query = {}
        pages += 1
    assert pages == 3 and len(seen) == len(set(seen)) == 8 and "gone" not in seen
    assert {i["name"] for i in owner_api.get("instances", status="stopped").json()["items"]} == {
        "app-0",
        "app-2",
        "app-4",
        "app-6",
    }
    assert [i["name"] for i in owner_api.get("instances", zone="ams1-a").json()["items"]] == ["db-1"]
    assert [i["name"] for i in owner_api.get("instances", name="DB").json()["items"]] == ["db-1"]
    assert_problem(owner_api.get("instances", cursor="garbage!"), 422)
    assert_problem(owner_api.get("instances", limit=101), 422)


def test_actions_follow_the_state_machine(owner_api, project, catalog):
    launched = owner_api.post("instances", launch_body(project, name="app")).json()["instances"][0]
    _settle([launched["operation"]["id"]])
    instance = Instance.objects.get(pk=launched["id"])
    stop = owner_api.post(f"instances/{instance.pk}/actions", {"action": "stop"})
    assert stop.status_code == 202 and stop.json()["instance"]["status"] == "stopping"
    again = owner_api.post(f"instances/{instance.pk}/actions", {"action": "stop"})
    assert again.json()["operation"]["id"] == stop.json()["operation"]["id"]  # the same request: nothing new
    body = assert_problem(owner_api.post(f"instances/{instance.pk}/actions", {"action": "start"}), 409)
    assert "works only when it is stopped" in body["detail"]
    _settle([stop.json()["operation"]["id"]])
    resize = owner_api.post(f"instances/{instance.pk}/actions", {"action": "resize", "flavor": "s-2vcpu-4gb"})
    assert resize.status_code == 202
    _settle([resize.json()["operation"]["id"]])
    assert Instance.objects.get(pk=instance.pk).flavor.code == "s-2vcpu-4gb"
    assert_problem(owner_api.post(f"instances/{instance.pk}/actions", {"action": "explode"}), 422)
    assert_problem(owner_api.post(f"instances/{instance.pk}/actions", {"action": "resize"}), 422)


def test_termination_protection_is_a_409_with_the_reason(owner_api, project, catalog):
    instance = InstanceFactory(project=project, name="precious")
    assert owner_api.patch(f"instances/{instance.pk}", {"termination_protection": True}).json()[
        "termination_protection"
    ]
    body = assert_problem(owner_api.delete(f"instances/{instance.pk}"), 409)
    assert "termination protection" in body["detail"]
    assert Instance.objects.get(pk=instance.pk).status == "running"
    owner_api.patch(f"instances/{instance.pk}", {"termination_protection": False})
    deleted = owner_api.delete(f"instances/{instance.pk}")
    assert deleted.status_code == 202 and deleted.json()["instance"]["status"] == "terminating"
    assert Operation.objects.filter(instance=instance, action="terminate").count() == 1
    # asking again while it terminates returns the same operation
    assert owner_api.delete(f"instances/{instance.pk}").json()["operation"] == deleted.json()["operation"]
