from __future__ import annotations

from django.urls import reverse

from portal.catalog.models import Jurisdiction
from portal.compute.models import Operation
from portal.residency.findings import noncompliant
from portal.residency.models import ResidencyPolicy
from tests.factories import InstanceFactory


def test_operators_can_nudge_stuck_operations_and_fail_them_from_admin(
    launch, admin_client, django_capture_on_commit_callbacks
):
    op = Operation.objects.get(instance__batch=launch())
    old_token = op.step_token
    url = reverse("admin:compute_operation_changelist")
    with django_capture_on_commit_callbacks() as queued:
        admin_client.post(url, {"action": "retry", "_selected_action": [op.pk]})
    op.refresh_from_db()
    assert op.state == "pending" and op.step_token != old_token and len(queued) == 1
    admin_client.post(url, {"action": "mark_failed", "_selected_action": [op.pk]})
    op.refresh_from_db()
    assert op.state == "failed" and op.error_message == "Stopped by an operator. Please try again."
    with django_capture_on_commit_callbacks() as queued:
        admin_client.post(url, {"action": "retry", "_selected_action": [op.pk]})
    assert Operation.objects.get(pk=op.pk).state == "failed" and not queued  # finished work is left alone


def test_a_narrowed_policy_lists_servers_already_outside_it(project, org, catalog):
    server = InstanceFactory(project=project, zone=catalog["iad1-a"], name="us-box")
    InstanceFactory(project=project, zone=catalog["fra1-a"], name="eu-box")
    policy = ResidencyPolicy.objects.create(organization=org, name="EU only")
    policy.jurisdictions.set(Jurisdiction.objects.filter(code="eu"))
    findings = noncompliant(project)
    assert [(f.resource.kind, f.resource.name) for f in findings] == [("Server", "us-box")]
    assert findings[0].resource.url == server.get_absolute_url()
