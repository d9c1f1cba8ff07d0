"""Idempotency-Key: a retried POST replays the first answer; another body with the key is a 422; a
refused or failed request is not remembered."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from portal.api.models import IdempotencyRecord
from portal.api.tasks import purge_idempotency_keys
from portal.audit.models import AuditAction, AuditEvent
from portal.catalog.models import Jurisdiction
from portal.compute import services
from portal.compute.models import Instance, LaunchBatch, SshKey, Volume
from portal.residency.models import ResidencyPolicy
from tests.api.conftest import ApiClient, assert_problem, launch_body, make_token
from tests.api.world import KEY_A, KEY_B


def test_a_retry_with_the_same_key_launches_once_and_replays_the_answer(owner_api, project):
    headers = {"Idempotency-Key": "launch-7f3a"}
    first = owner_api.post("instances", launch_body(project, count=3), headers=headers)
    again = owner_api.post("instances", launch_body(project, count=3), headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true" and not first.has_header("Idempotent-Replayed")
    assert LaunchBatch.objects.count() == 1 and Instance.objects.count() == 3


def test_the_same_key_with_another_body_is_422(owner_api, project):
    headers = {"Idempotency-Key": "k-1"}
    assert owner_api.post("instances", launch_body(project), headers=headers).status_code == 202
    body = assert_problem(owner_api.post("instances", launch_body(project, count=2), headers=headers), 422)
    assert "different request" in body["detail"]
    assert Instance.objects.count() == 1


def test_a_refused_request_is_not_remembered_so_the_retry_runs_once_the_cause_is_fixed(owner_api, project):
    project.quota_instances = 0
    project.save()
    headers = {"Idempotency-Key": "k-2"}
    assert_problem(owner_api.post("instances", launch_body(project), headers=headers), 403)
    assert not IdempotencyRecord.objects.exists()
    project.quota_instances = 5
    project.save()
    second = owner_api.post("instances", launch_body(project), headers=headers)
    assert second.status_code == 202 and not second.has_header("Idempotent-Replayed")
    assert Instance.objects.count() == 1
    third = owner_api.post("instances", launch_body(project), headers=headers)
    assert third["Idempotent-Replayed"] == "true" and third.content == second.content
    assert Instance.objects.count() == 1


def test_after_a_refusal_the_key_may_carry_a_corrected_body(owner_api, project):
    project.quota_instances = 2
    project.save()
    headers = {"Idempotency-Key": "k-4"}
    assert_problem(owner_api.post("instances", launch_body(project, count=3), headers=headers), 403)
    assert owner_api.post("instances", launch_body(project, count=2), headers=headers).status_code == 202
    assert Instance.objects.count() == 2


def test_a_conflict_is_not_remembered_either(owner_api, project):
    headers = {"Idempotency-Key": "key-upload"}
    taken = SshKey.objects.create(
        project=project, name="laptop", public_key=KEY_B, key_type="ssh-ed25519", bits=256, fingerprint="x"
    )
    body = {"project": project.slug, "name": "laptop", "public_key": KEY_A}
    assert_problem(owner_api.post("ssh-keys", body, headers=headers), 409)
    taken.delete()
    added = owner_api.post("ssh-keys", body, headers=headers)
    assert added.status_code == 201 and added.json()["name"] == "laptop"
    assert owner_api.post("ssh-keys", body, headers=headers)["Idempotent-Replayed"] == "true"
    assert SshKey.objects.count() == 1


def test_a_refused_placement_keyed_or_not_is_audited(owner_api, org, project):
    policy = ResidencyPolicy.objects.create(organization=org, name="EU only")
    policy.jurisdictions.set(Jurisdiction.objects.filter(code="eu"))
    body = {"project": project.pk, "name": "data", "zone": "iad1-a", "size_gib": 10}
    assert_problem(owner_api.post("volumes", body, headers={"Idempotency-Key": "vol"}), 403)
    assert AuditEvent.objects.filter(action=AuditAction.PLACEMENT_DENIED).count() == 1
    assert not IdempotencyRecord.objects.exists() and not Volume.objects.exists()


def test_a_failure_undoes_the_work_and_forgets_the_key(owner_api, project, monkeypatch):
    launch = services.instance_launch

    def launch_then_crash(**kwargs):
        launch(**kwargs)
        raise RuntimeError("lost after the work")

    monkeypatch.setattr(services, "instance_launch", launch_then_crash)
    headers = {"Idempotency-Key": "k-5"}
    assert_problem(owner_api.post("instances", launch_body(project), headers=headers), 500)
    assert not LaunchBatch.objects.exists() and not IdempotencyRecord.objects.exists()
    monkeypatch.setattr(services, "instance_launch", launch)
    assert owner_api.post("instances", launch_body(project), headers=headers).status_code == 202
    assert LaunchBatch.objects.count() == 1 and Instance.objects.count() == 1


def test_keys_are_per_token(owner_api, project, owner, org):
    headers = {"Idempotency-Key": "k-6"}
    assert owner_api.post("instances", launch_body(project), headers=headers).status_code == 202
    _, secret = make_token(owner, org, name="other")
    other = ApiClient(secret).post("instances", launch_body(project), headers=headers)
    assert other.status_code == 202 and not other.has_header("Idempotent-Replayed")
    assert LaunchBatch.objects.count() == 2


def test_a_replay_of_something_deleted_since_is_a_conflict(owner_api, project):
    headers = {"Idempotency-Key": "k-7"}
    body = {"project": project.slug, "public_key": KEY_A}
    added = owner_api.post("ssh-keys", body, headers=headers)
    assert owner_api.delete(f"ssh-keys/{added.json()['id']}").status_code == 204
    problem = assert_problem(owner_api.post("ssh-keys", body, headers=headers), 409)
    assert problem["type"].endswith("/idempotency-target-gone") and "new key" in problem["detail"]
    assert not SshKey.objects.exists()


def test_without_a_key_every_post_acts(owner_api, project):
    owner_api.post("instances", launch_body(project))
    owner_api.post("instances", launch_body(project))
    assert Instance.objects.count() == 2


def test_keys_expire_after_a_day(owner_api, project):
    headers = {"Idempotency-Key": "k-3"}
    owner_api.post("instances", launch_body(project), headers=headers)
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert owner_api.post("instances", launch_body(project), headers=headers).status_code == 202
    assert Instance.objects.count() == 2
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert purge_idempotency_keys() == 1 and not IdempotencyRecord.objects.exists()


def test_a_bad_key_is_400(owner_api, project):
    assert_problem(
        owner_api.post("instances", launch_body(project), headers={"Idempotency-Key": "x" * 300}), 400
    )
    assert not Instance.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_launch_once():
    """Eight clients retry at the same moment: one launch, eight identical answers."""
    from portal.catalog.demo import load_demo_catalog
    from portal.compute.models import SimulatedKnobs
    from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

    load_demo_catalog()
    SimulatedKnobs.objects.create(
        boot_seconds=0, action_seconds=0, transient_error_rate=0, fail_marker="fail"
    )
    org = OrganizationFactory(slug="race")
    project = ProjectFactory(organization=org, slug="race")
    owner = MembershipFactory(organization=org, role="owner", user=UserFactory()).user
    _, secret = make_token(owner, org)
    barrier = threading.Barrier(8)
    answers: list = []

    def attempt() -> None:
        try:
            api = ApiClient(secret)
            barrier.wait(timeout=30)
            response = api.post(
                "instances", launch_body(project, count=2), headers={"Idempotency-Key": "race"}
            )
            answers.append((response.status_code, response.json()))
        except Exception as error:
            answers.append((type(error).__name__, str(error)))
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    print(f"idempotency race ({connection.vendor}): {[a[0] for a in answers]}")
    assert [a[0] for a in answers] == [202] * 8
    assert len({str(a[1]) for a in answers}) == 1
    assert LaunchBatch.objects.count() == 1 and Instance.objects.count() == 2
