from __future__ import annotations

import re

import pytest
from django.urls import reverse

from portal.compute.models import Instance, Operation
from tests.factories import InstanceFactory


def _list_url(project):
    return reverse("compute:instance_list", args=[project.organization.slug, project.slug])


def test_polling_continues_while_something_moves_and_stops_when_all_settle(project, owner, client_as):
    client = client_as(owner)
    moving = InstanceFactory(project=project, status="provisioning")
    page = client.get(_list_url(project)).content.decode()
    assert 'hx-trigger="every 2s"' in page
    partial = client.get(_list_url(project), headers={"HX-Request": "true"})
    assert partial.status_code == 200 and "<html" not in partial.content.decode()
    Instance.objects.filter(pk=moving.pk).update(status="running")
    last = client.get(_list_url(project), headers={"HX-Request": "true"})
    assert last.status_code == 286  # htmx: swap this in and stop polling
    assert 'hx-trigger="every 2s"' not in last.content.decode()


def test_list_filters(project, owner, client_as):
    InstanceFactory(project=project, name="db-1", status="stopped")
    InstanceFactory(project=project, name="web-1", status="running")
    client = client_as(owner)
    page = client.get(_list_url(project), {"status": "stopped"}).content.decode()
    assert "db-1" in page and "web-1" not in page
    assert "web-1" in client.get(_list_url(project), {"q": "web"}).content.decode()
    assert client.get(_list_url(project), {"status": "bogus"}).status_code == 200  # ignored, not a 500


def _action(client, instance, **data):
    project = instance.project
    return client.post(
        reverse("compute:instance_action", args=[project.organization.slug, project.slug, instance.pk]), data
    )


def test_detail_shows_how_to_connect_and_only_possible_actions(project, owner, client_as):
    instance = InstanceFactory(project=project, status="stopped", addresses=["100.64.0.9"])
    page = client_as(owner).get(instance.get_absolute_url()).content.decode()
    assert "ssh debian@100.64.0.9" in page
    assert 'value="start"' in page and 'value="stop"' not in page
    assert "Resize to" in page


def test_stop_and_hard_reboot_ask_once_more_and_say_what_happens(project, owner, client_as):
    instance = InstanceFactory(project=project, status="running", name="db-1")
    page = client_as(owner).get(instance.get_absolute_url()).content.decode()
    for verb, consequence in (("Stop", "ends the programs running on it"), ("Hard reboot", "can be lost")):
        panel = re.search(
            rf'<details class="confirm">\s*<summary[^>]*>{verb}</summary>(.*?)</details>', page, re.S
        )
        assert panel, verb
        assert consequence in panel.group(1) and f">{verb} db-1</button>" in panel.group(1)
    # A gentle reboot interrupts nothing for long: one click, as before.
    assert re.search(
        r'value="reboot">\s*<button type="submit" class="button button-ghost">Reboot</button>', page
    )


def test_terminate_needs_the_name_and_respects_protection(project, owner, client_as, catalog):
    client = client_as(owner)
    instance = InstanceFactory(project=project, status="running")
    wrong = _action(client, instance, action="terminate", confirm_name="nope")
    assert wrong.status_code == 400 and "to confirm" in wrong.content.decode()
    Instance.objects.filter(pk=instance.pk).update(termination_protection=True)
    protected = _action(client, instance, action="terminate", confirm_name=instance.name)
    assert protected.status_code == 409 and "termination protection" in protected.content.decode()
    assert Instance.objects.get(pk=instance.pk).status == "running"
    assert not Operation.objects.exists()


@pytest.mark.parametrize(
    ("status", "action"), [("stopped", "stop"), ("running", "start"), ("running", "resize")]
)
def test_actions_the_state_does_not_allow_are_a_409_or_400(
    project, owner, client_as, catalog, status, action
):
    instance = InstanceFactory(project=project, status=status)
    response = _action(client_as(owner), instance, action=action, flavor="1")
    assert response.status_code in (400, 409)
    assert not Operation.objects.exists()


def test_unknown_action_and_get_are_refused(project, owner, client_as):
    instance = InstanceFactory(project=project)
    client = client_as(owner)
    assert _action(client, instance, action="explode").status_code == 400
    url = reverse("compute:instance_action", args=[project.organization.slug, project.slug, instance.pk])
    assert client.get(url).status_code == 405


def test_viewer_sees_no_action_buttons(project, viewer, client_as):
    instance = InstanceFactory(project=project)
    page = client_as(viewer).get(instance.get_absolute_url()).content.decode()
    assert "Actions" not in page and "Terminate" not in page
    assert _action(client_as(viewer), instance, action="stop").status_code == 403


def test_protection_toggles_and_is_audited_once(project, owner, viewer, client_as):
    from portal.audit.models import AuditEvent

    instance = InstanceFactory(project=project)
    url = reverse("compute:instance_protection", args=[project.organization.slug, project.slug, instance.pk])
    client = client_as(owner)
    assert client.get(url).status_code == 405
    assert client.post(url, {"protected": "1"}).status_code == 302
    assert client.post(url, {"protected": "1"}).status_code == 302
    assert Instance.objects.get(pk=instance.pk).termination_protection
    assert AuditEvent.objects.filter(action="instance.protection_changed").count() == 1
    assert client_as(viewer).post(url, {"protected": "0"}).status_code == 403


def test_the_activity_lists_each_operation_with_who_asked_and_its_error(project, owner, client_as):
    instance = InstanceFactory(project=project, status="running")
    Operation.objects.create(
        instance=instance, action="stop", state="failed", requested_by=owner, error_message="The cloud said no."
    )
    page = client_as(owner).get(instance.get_absolute_url()).content.decode()
    activity = re.search(r"<h2>Activity</h2>(.*?)</ol>", page, re.S)
    assert activity, "no Activity section"
    assert "Stop" in activity.group(1) and "owner@example.com" in activity.group(1)
    assert '<p class="op-error">The cloud said no.</p>' in activity.group(1)
