"""A firewall's page in Chromium: a rule the set already has is refused in words that name it, and
nothing is added. Shot at a desktop and a phone width (into the test's tmp_path)."""

from __future__ import annotations

import pytest

from portal.compute.models import FirewallRule, FirewallRuleSet
from tests.browser.pages import look, owner_page

pytestmark = pytest.mark.browser

__all__ = ["owner_page"]  # the fixture


def test_a_rule_the_set_already_has_is_refused_and_named(owner_page, tmp_path):
    page, project = owner_page, owner_page.project
    rule_set = FirewallRuleSet.objects.create(project=project, name="ssh-office")
    FirewallRule.objects.create(
        rule_set=rule_set, port_from=22, port_to=22, source="203.0.113.4/32", description="Office"
    )
    page.goto(page.base + f"/o/{project.organization.slug}/p/{project.slug}/firewalls/{rule_set.pk}/")
    form = page.locator("form", has=page.get_by_role("button", name="Add rule"))
    form.get_by_label("From port").fill("22")
    form.get_by_label("To port").fill("22")
    form.get_by_label("Source").fill("203.0.113.4")
    form.get_by_label("Description").fill("SSH again")
    form.get_by_role("button", name="Add rule").click()

    refusal = page.get_by_text("This rule set already has that rule (TCP 22 from 203.0.113.4/32).")
    refusal.wait_for()
    assert page.get_by_text("Rule added").count() == 0
    assert form.get_by_label("Description").input_value() == "SSH again"  # kept, to edit
    assert list(rule_set.rules.values_list("description", flat=True)) == ["Office"]
    look(page, tmp_path, "firewall-same-rule-refused", "section:has(#add-rule)")
    assert not page.csp_violations
