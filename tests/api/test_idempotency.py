"""Idempotency-Key: a retried POST replays the first answer; another body with the key is a 422."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from portal.api.models import IdempotencyRecord
from portal.api.tasks import purge_idempotency_keys
from portal.compute.models import Instance, LaunchBatch
from tests.api.conftest import ApiClient, assert_problem, launch_body, make_token


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


def test_refusals_are_replayed_too_but_keys_are_per_token(owner_api, project, owner, org):
    project.quota_instances = 0
    project.save()
    headers = {"Idempotency-Key": "k-2"}
    first = owner_api.post("instances", launch_body(project), headers=headers)
    assert first.status_code == 403
    project.quota_instances = 5
    project.save()
    assert owner_api.post("instances", launch_body(project), headers=headers).content == first.content
    _, secret = make_token(owner, org, name="other")
    assert ApiClient(secret).post("instances", launch_body(project), headers=headers).status_code == 202


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
