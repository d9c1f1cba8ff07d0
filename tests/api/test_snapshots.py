"""Snapshots, images and backup schedules over the API: the services' rules and words, viewers read
and members write, another project's images are never listed, one snapshot per Idempotency-Key."""

from __future__ import annotations

from portal.catalog.models import Image
from portal.compute.models import BackupSchedule, Instance, Snapshot
from tests.api.conftest import assert_problem
from tests.factories import InstanceFactory, ProjectFactory


def test_take_list_get_and_delete(owner_api, project):
    server = InstanceFactory(project=project, name="web-1", backend_id="sim-x")
    created = owner_api.post("snapshots", {"project": project.slug, "server": str(server.pk), "name": "pre"})
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["name"], body["kind"], body["status"], body["zone"], body["source_server"]) == (
        "pre",
        "server",
        "creating",
        "fra1-a",
        str(server.pk),
    )
    assert body["region"] == "Frankfurt" and body["currency"] == "EUR"
    listed = owner_api.get("snapshots", project=project.slug).json()["items"]
    assert [item["id"] for item in listed] == [body["id"]]
    assert owner_api.get(f"snapshots/{body['id']}").json() == body
    # Still being taken: not deleted, with the reason.
    refused = assert_problem(owner_api.delete(f"snapshots/{body['id']}"), 409)
    assert refused["detail"] == "pre is still being taken: delete it once that is done."
    Snapshot.objects.filter(pk=body["id"]).update(status="available")
    assert owner_api.delete(f"snapshots/{body['id']}").status_code == 204
    assert Snapshot.objects.get(pk=body["id"]).status == "deleting"


def test_a_busy_server_is_refused_with_the_reason(owner_api, project):
    server = InstanceFactory(project=project, name="web-1", status="resizing")
    body = assert_problem(owner_api.post("snapshots", {"project": project.pk, "server": str(server.pk)}), 409)
    assert body["detail"] == "web-1 is being resized: it can't be snapshotted now."
    assert not Snapshot.objects.exists()


def test_server_and_volume_together_are_refused(owner_api, project):
    server = InstanceFactory(project=project)
    body = assert_problem(owner_api.post("snapshots", {"project": project.pk}), 422)
    assert body["errors"] == [
        {"field": "server", "message": "Give either the server or the volume to snapshot."}
    ]
    assert server and not Snapshot.objects.exists()


def test_a_viewer_reads_but_does_not_write(org, project, viewer, catalog, knobs, token_for):
    server = InstanceFactory(project=project)
    _, api = token_for(viewer, org)
    assert api.get("snapshots").status_code == 200
    assert api.get(f"instances/{server.pk}/backup-schedule").json()["enabled"] is False
    body = assert_problem(api.post("snapshots", {"project": project.pk, "server": str(server.pk)}), 403)
    assert "Viewer" in body["detail"]
    put = api.put(f"instances/{server.pk}/backup-schedule", {"frequency": "daily", "hour": 3, "keep": 7})
    assert_problem(put, 403)
    assert not Snapshot.objects.exists() and not BackupSchedule.objects.exists()


def test_images_lists_the_catalog_and_the_projects_own_never_another_s(owner_api, org, project):
    mine = Image.objects.create(name="golden", os_family="debian", version="1", project=project)
    other = ProjectFactory(organization=org, slug="elsewhere")
    theirs_org = ProjectFactory(slug="stranger")
    Image.objects.create(name="stranger-image", os_family="debian", version="1", project=theirs_org)
    Image.objects.create(name="other-project-image", os_family="debian", version="1", project=other)
    names = {i["name"]: i["project"] for i in owner_api.get("images", project=project.slug).json()["items"]}
    assert names["golden"] == project.pk and names["Debian 13"] is None
    assert "stranger-image" not in names and "other-project-image" not in names
    everything = {i["name"] for i in owner_api.get("images").json()["items"]}
    assert "other-project-image" in everything and "stranger-image" not in everything
    catalog = {i["name"] for i in owner_api.get("catalog/images").json()["items"]}
    assert "golden" not in catalog
    assert mine


def test_an_operators_upload_is_not_deleted_and_a_public_image_is_not_found(owner_api, project):
    upload = Image.objects.create(name="golden", os_family="debian", version="1", project=project)
    body = assert_problem(owner_api.delete(f"images/{upload.pk}"), 409)
    assert body["detail"] == "golden was provided by your operator: ask them to remove it."
    public = Image.objects.get(name="Debian 13")
    assert_problem(owner_api.delete(f"images/{public.pk}"), 404)
    assert Image.objects.get(pk=public.pk).is_active


def test_a_schedule_with_every_problem_at_once(owner_api, project):
    server = InstanceFactory(project=project)
    response = owner_api.put(
        f"instances/{server.pk}/backup-schedule", {"frequency": "weekly", "hour": 25, "keep": 0}
    )
    body = assert_problem(response, 422)
    assert [e["field"] for e in body["errors"]] == ["hour", "weekday", "keep"]
    assert not BackupSchedule.objects.exists()
    ok = owner_api.put(
        f"instances/{server.pk}/backup-schedule", {"frequency": "weekly", "hour": 2, "weekday": 6, "keep": 4}
    )
    assert ok.status_code == 200, ok.content
    assert (ok.json()["weekday"], ok.json()["keep"], ok.json()["enabled"]) == (6, 4, True)
    assert ok.json()["next_run_at"]
    assert Instance.objects.get(pk=server.pk).backup_schedule.keep == 4


def test_the_schema_documents_the_endpoints(owner_api):
    paths = owner_api.get("openapi.json").json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/snapshots"])
    assert {"get", "delete"} <= set(paths["/api/v1/snapshots/{snapshot_id}"])
    assert {"get", "put"} <= set(paths["/api/v1/instances/{instance_id}/backup-schedule"])
    assert "delete" in paths["/api/v1/images/{image_id}"]
