from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.audit.models import AuditEvent
from portal.catalog.models import Flavor, Image, Jurisdiction
from portal.compute.models import Instance, Operation, SshKey
from portal.residency.models import ResidencyPolicy


@pytest.fixture
def form_data(catalog):
    return {
        "name": "web",
        "count": 1,
        "zone": catalog["fra1-a"].pk,
        "image": Image.objects.get(name="Debian 13").pk,
        "flavor": Flavor.objects.get(code="s-1vcpu-2gb").pk,
        "allow_all_inbound": "on",  # no firewall, confirmed
    }


def _post(client, project, data):
    return client.post(reverse("compute:launch", args=[project.organization.slug, project.slug]), data)


def test_launch_creates_numbered_servers_and_queues_them_after_commit(launch, project):
    batch = launch(name="web", count=3)
    names = sorted(batch.instances.values_list("name", flat=True))
    assert names == ["web-1", "web-2", "web-3"]
    assert Operation.objects.filter(instance__batch=batch, action="create", state="pending").count() == 3
    # One on-commit hook enqueues all three, after commit only.
    assert len(launch.callbacks) == 1 and "enqueue_on_commit" in launch.callbacks[0].__qualname__
    assert AuditEvent.objects.filter(action="instance.launched").count() == 1


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"name": "Web Server!"}, "name", "Use lower-case letters"),
        ({"count": 0}, "count", "Launch between 1 and 20 servers"),
        ({"count": 21}, "count", "Launch between 1 and 20 servers"),
        ({"flavor": "m-32vcpu-128gb", "zone": "ams1-a"}, "flavor", "not offered in ams1-a"),
        ({"image": "Windows Server 2025", "root_disk_gib": 30}, "root_disk_gib", "at least 50 GiB"),
        ({"user_data": "x" * (16 * 1024 + 1)}, "user_data", "the limit is 16 KiB"),
        ({"new_ssh_key": "ssh-rsa AAAAnot-a-key"}, "new_ssh_key", "not valid base64"),
        ({"zone": "par1-b"}, "zone", "sold out"),
        ({"zone": "987654"}, "zone", "Select a valid choice"),
    ],
)
def test_bad_launches_are_refused_with_a_clear_message_and_create_nothing(
    form_data, project, owner, client_as, catalog, change, field, message
):
    data = dict(form_data)
    for key, value in change.items():
        if key == "flavor":
            value = Flavor.objects.get(code=value).pk
        elif key == "image":
            value = Image.objects.get(name=value).pk
        elif key == "zone" and value in catalog:
            value = catalog[value].pk
        data[key] = value
    response = _post(client_as(owner), project, data)
    assert 400 <= response.status_code < 500
    assert message in response.content.decode()
    assert not Instance.objects.exists() and not SshKey.objects.exists()


def test_forbidden_zone_is_refused_with_the_reason_and_audited(
    form_data, project, owner, client_as, catalog, org
):
    policy = ResidencyPolicy.objects.create(organization=org, name="EU only")
    policy.jurisdictions.set(Jurisdiction.objects.filter(code="eu"))
    response = _post(client_as(owner), project, form_data | {"zone": catalog["iad1-a"].pk})
    assert response.status_code == 403
    assert "Ashburn is in United States jurisdiction" in response.content.decode()
    assert not Instance.objects.exists()
    assert AuditEvent.objects.filter(action="residency.placement_denied", project=project).count() == 1


def test_over_quota_is_refused_and_says_what_is_left(form_data, project, owner, client_as):
    project.quota_instances = 2
    project.save()
    response = _post(client_as(owner), project, form_data | {"count": 3})
    assert response.status_code == 403
    assert "instances: needs 3, 2 left of 2" in response.content.decode()
    assert not Instance.objects.exists()


def test_a_pasted_key_is_saved_with_the_launch(form_data, project, owner, client_as, tmp_path):
    import subprocess

    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dana@laptop", "-f", tmp_path / "k"], check=True
    )
    key = (tmp_path / "k.pub").read_text()
    response = _post(client_as(owner), project, form_data | {"new_ssh_key": key})
    assert response.status_code == 302
    saved = SshKey.objects.get(project=project)
    assert saved.name == "dana@laptop" and saved.bits == 256
    assert list(Instance.objects.get().ssh_keys.all()) == [saved]


def test_viewers_and_unverified_members_cannot_launch(form_data, project, viewer, client_as):
    assert _post(client_as(viewer), project, form_data).status_code == 403
    assert not Instance.objects.exists()


def test_check_endpoint_reports_the_price_and_only_touched_errors(form_data, project, owner, client_as):
    url = reverse("compute:launch_check", args=[project.organization.slug, project.slug])
    page = client_as(owner).post(
        url, {"name": "web", "count": 2, "zone": form_data["zone"], "flavor": form_data["flavor"]}
    )
    text = page.content.decode()
    assert page.status_code == 200
    assert "26.06 EUR" in text  # 2 x (0.0110 + 50 GiB x 0.000137) EUR/h x 730 h
    assert "Choose an image" not in text  # not filled in yet: not an error yet
    bad = client_as(owner).post(url, {"name": "Bad Name", "count": 1}).content.decode()
    assert "Use lower-case letters" in bad


def test_the_check_redraws_images_and_sizes_only_for_another_zone(
    form_data, project, owner, client_as, catalog
):
    """Redrawn on every check, the cards were replaced under a click in progress and the click was
    lost; for another zone they must be redrawn (it offers other ones), keeping what was chosen."""
    url = reverse("compute:launch_check", args=[project.organization.slug, project.slug])
    client = client_as(owner)
    fra = str(form_data["zone"])
    with CaptureQueriesContext(connection) as queries:
        same = client.post(url, form_data | {"sections_zone": fra}).content.decode()
    listing = f"FROM {connection.ops.quote_name(Image._meta.db_table)} INNER JOIN"
    listed = [q["sql"] for q in queries if listing in q["sql"]]
    assert not listed  # the zone's images are not listed again for cards that are not redrawn
    assert 'id="section-image"' not in same and 'id="section-size"' not in same
    assert "Debian 13" in same  # the summary still says what was chosen

    other = client.post(url, form_data | {"sections_zone": str(catalog["ams1-a"].pk)}).content.decode()
    assert (
        'id="section-image" hx-swap-oob="true"' in other and 'id="section-size" hx-swap-oob="true"' in other
    )
    assert f'name="sections_zone" value="{fra}"' in other
    assert f'name="image" value="{form_data["image"]}" checked' in other
    assert f'name="flavor" value="{form_data["flavor"]}" id="flavor-{form_data["flavor"]}" checked' in other


def test_the_wizard_works_without_javascript_as_a_plain_form(form_data, project, owner, client_as):
    client = client_as(owner)
    page = client.get(
        reverse("compute:launch", args=[project.organization.slug, project.slug])
    ).content.decode()
    assert 'method="post"' in page and 'type="radio" name="zone"' in page and 'type="submit"' in page
    response = _post(client, project, form_data)
    assert response.status_code == 302 and Instance.objects.count() == 1


def test_a_preset_whose_rule_set_was_edited_gets_a_fresh_set(access, project, owner):
    from portal.compute.models import FirewallRule
    from portal.compute.presets import presets_for, rule_set_from_preset

    preset = presets_for("203.0.113.7")["web"]
    first = rule_set_from_preset(project, preset, owner)
    assert rule_set_from_preset(project, preset, owner) == first
    FirewallRule.objects.filter(rule_set=first).delete()  # someone emptied it
    fresh = rule_set_from_preset(project, preset, owner)
    assert fresh != first and fresh.name == "web-and-ssh-2" and fresh.rules.count() == 3


@pytest.mark.parametrize(
    ("guard", "status", "created"), [("block", 403, 0), ("warn", 302, 1), ("off", 302, 1)]
)
def test_the_budget_guard_applies_to_launches(form_data, project, owner, client_as, guard, status, created):
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from portal.budgets.models import Budget
    from portal.metering.models import UsageSegment

    Budget.objects.create(project=project, amount=Decimal("5.00"), guard=guard)
    # 8.33 EUR spent in the last 30 seconds: the forecast is over the budget on any day.
    UsageSegment.objects.create(
        organization=project.organization,
        project=project,
        resource_type="instance",
        resource_id=uuid.uuid4(),
        resource_name="old",
        zone_id=form_data["zone"],
        meter="compute",
        quantity=1,
        unit_price=Decimal("1000"),
        started_at=timezone.now() - timedelta(seconds=30),
        ended_at=timezone.now(),
    )
    response = _post(client_as(owner), project, form_data)
    assert response.status_code == status
    assert Instance.objects.count() == created
    if guard == "block":
        assert "budget" in response.content.decode()


def test_the_wizard_shows_the_budget_impact_before_launch(form_data, project, owner, client_as):
    from decimal import Decimal

    from portal.budgets.models import Budget

    Budget.objects.create(project=project, amount=Decimal("500.00"), guard="warn")
    url = reverse("compute:launch_check", args=[project.organization.slug, project.slug])
    text = client_as(owner).post(url, form_data | {"count": 2}).content.decode()
    assert "+26.06 EUR/month" in text and "of this project&#x27;s 500.00 EUR budget" in text
