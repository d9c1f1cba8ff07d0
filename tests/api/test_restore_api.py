"""Restoring a server's disk over the API: the service's rules and words (another project's
snapshot is a 404, bad input a 422 and a busy server or snapshot a 409 with all reasons at once, nothing changed), viewers may
not, a retry with the same Idempotency-Key restores once, and the schema documents it."""

from __future__ import annotations

from portal.compute.models import Operation, Snapshot
from tests.api.conftest import assert_problem
from tests.factories import InstanceFactory, ProjectFactory


def _server_and_backup(project, status="running"):
    instance = InstanceFactory(
        project=project, name="db-1", status=status, backend_id="sim-db-1", root_disk_gib=50
    )
    backup = Snapshot.objects.create(
        project=project,
        zone=instance.zone,
        name="nightly",
        kind="backup",
        source_instance=instance,
        status="available",
        image_ref="simimg-nightly",
        min_disk_gib=50,
    )
    return instance, backup


def test_restore_is_accepted_and_the_server_shows_it(owner_api, project):
    server, backup = _server_and_backup(project)
    answer = owner_api.post(
        f"instances/{server.pk}/restore", {"snapshot": str(backup.pk), "confirm_name": "db-1"}
    )
    assert answer.status_code == 202, answer.content
    body = answer.json()
    assert body["instance"]["status"] == "rebuilding"
    op = Operation.objects.get(pk=body["operation"]["id"])
    assert (op.action, op.params["image_ref"], op.params["then"]) == ("rebuild", "simimg-nightly", "running")


def test_another_projects_backup_is_not_found(owner_api, org, project):
    server, _ = _server_and_backup(project)
    other = ProjectFactory(organization=org, slug="other")
    _, theirs = _server_and_backup(other)
    body = assert_problem(
        owner_api.post(
            f"instances/{server.pk}/restore", {"snapshot": str(theirs.pk), "confirm_name": "db-1"}
        ),
        404,
    )
    assert body["detail"] == "No such snapshot or backup in this project."
    assert not Operation.objects.exists()


def test_every_reason_at_once(owner_api, project, catalog):
    server, backup = _server_and_backup(project, status="resizing")
    Snapshot.objects.filter(pk=backup.pk).update(min_disk_gib=80)
    body = assert_problem(
        owner_api.post(f"instances/{server.pk}/restore", {"snapshot": str(backup.pk), "confirm_name": "db"}),
        422,
    )
    assert [e["message"] for e in body["errors"]] == [
        "Type the server's name “db-1” to confirm.",
        "“nightly” needs a disk of at least 80 GiB; db-1's disk is 50 GiB.",
        "db-1 is being resized: its disk can't be restored now.",
    ]
    assert not Operation.objects.exists()


def test_a_backup_still_being_taken_is_a_conflict(owner_api, project):
    server, backup = _server_and_backup(project)
    Snapshot.objects.filter(pk=backup.pk).update(status="creating")
    body = assert_problem(
        owner_api.post(
            f"instances/{server.pk}/restore", {"snapshot": str(backup.pk), "confirm_name": "db-1"}
        ),
        409,
    )
    assert "“nightly” is still being taken: wait until it is available." in [
        e["message"] for e in body["errors"]
    ]


def test_a_viewer_may_not(org, project, viewer, catalog, knobs, token_for):
    server, backup = _server_and_backup(project)
    _, api = token_for(viewer, org)
    assert_problem(
        api.post(f"instances/{server.pk}/restore", {"snapshot": str(backup.pk), "confirm_name": "db-1"}), 403
    )
    assert not Operation.objects.exists()


def test_the_schema_documents_it(owner_api):
    paths = owner_api.get("openapi.json").json()["paths"]
    post = paths["/api/v1/instances/{instance_id}/restore"]["post"]
    assert post["operationId"] == "restore_instance_disk"
    assert {"202", "403", "404", "409", "422"} <= set(post["responses"])
