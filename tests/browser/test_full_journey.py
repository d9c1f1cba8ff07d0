"""One newcomer's whole way through the portal, in Chromium against a live server with a real Celery
worker: sign up → open the confirmation e-mail → confirm → organization and project → an SSH key →
a residency policy → two servers in an allowed zone (a forbidden zone refused with its reason) →
the list reaches "Running" without a reload → stop and start one → terminate the other → usage
graph and cost → a budget → the 80 % alert e-mail → the residency attestation of the month so far.

Walked twice: on a laptop (1366 px) and on a phone (390 px, where no step may scroll sideways).
Each step is a screenshot in docs/screenshots/, the phone's with a -mobile suffix.
"""

from __future__ import annotations

import html
import math
import re
import subprocess
from datetime import timedelta
from decimal import ROUND_UP, Decimal

import pytest
from django.conf import settings
from django.utils import timezone

from portal.audit.models import AuditAction, AuditEvent
from portal.budgets.models import AlertKind, BudgetAlert
from portal.budgets.selectors import project_forecast
from portal.budgets.tasks import check_budgets
from portal.catalog.demo import load_demo_catalog
from portal.catalog.models import Flavor, Zone
from portal.compute.models import Instance, SshKey
from portal.metering.models import UsageSegment
from portal.metering.selectors import month_bounds
from portal.tenancy.models import Membership, Project, Role
from tests.browser.pages import fitting_shots
from tests.browser.wizard import choose, launch_from_wizard

pytestmark = [pytest.mark.browser, pytest.mark.worker]

EMAIL = "mira@example.com"
PASSWORD = "a-long-pass-phrase-2026"


def _open_mail(page, mail) -> None:
    """Show an e-mail from the test outbox as a mail client would: its HTML part, or its text with
    the links made clickable."""
    parts = [content for content, mimetype in getattr(mail, "alternatives", []) if mimetype == "text/html"]
    if parts:
        body = parts[0]
    else:
        text = html.escape(mail.body)
        body = (
            "<pre style='white-space: pre-wrap'>"
            + re.sub(r"(https?://\S+)", r'<a href="\1">\1</a>', text)
            + "</pre>"
        )
    page.set_content(
        "<main style='font: 15px/1.5 sans-serif; max-width: 760px; margin: 24px auto'>"
        f"<p><strong>From:</strong> {html.escape(mail.from_email)}<br><strong>To:</strong> "
        f"{html.escape(', '.join(mail.to))}<br><strong>Subject:</strong> {html.escape(mail.subject)}</p>"
        f"<hr>{body}</main>"
    )


def _public_key(tmp_path) -> str:
    path = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mira@laptop", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.with_suffix(".pub").read_text().strip()


@pytest.mark.parametrize(("width", "suffix"), [(1366, ""), (390, "-mobile")], ids=["laptop", "phone"])
def test_signup_to_budget_alert(
    width, suffix, celery_worker_process, live_server, new_page, shoot, mailoutbox, tmp_path
):
    load_demo_catalog()
    shoot = fitting_shots(shoot, suffix)
    page = new_page(width=width, height=860 if width > 600 else 844)

    # --- Sign up, confirm the address from the e-mail, onboarding ------------------------------
    page.goto(live_server.url)
    page.get_by_role("link", name="Create an account").click()
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    shoot(page, "30-journey-signup")
    page.get_by_role("button", name="Sign Up").click()
    page.wait_for_url("**/orgs/new/")
    assert page.get_by_role("button", name="Create organization").is_disabled()

    confirmation = mailoutbox[-1]
    assert confirmation.to == [EMAIL]
    mail = page.context.new_page()  # the mail client, in a second tab
    _open_mail(mail, confirmation)
    shoot(mail, "31-journey-confirmation-email")
    mail.locator("a[href*='/accounts/confirm-email/']").first.click()
    mail.get_by_role("button", name="Confirm").click()
    # The confirmation's answer, before the tab closes: closing a tab while its navigation is under
    # way can leave the browser without an answer to the close.
    mail.get_by_text(f"You have confirmed {EMAIL}.").wait_for()
    mail.close()

    page.goto(live_server.url)
    page.wait_for_url("**/orgs/new/")
    page.fill("input[name=name]", "Mira Labs")
    page.get_by_role("button", name="Create organization").click()
    page.wait_for_url("**/projects/new/?welcome=1")
    page.fill("input[name=name]", "Web shop")
    shoot(page, "32-journey-onboarding-project")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url("**/o/mira-labs/p/web-shop/")
    project = Project.objects.get(organization__slug="mira-labs", slug="web-shop")
    org = project.organization
    assert Membership.objects.get(organization=org, user__email=EMAIL).role == Role.OWNER

    # --- An SSH key --------------------------------------------------------------------------
    page.locator(".sidebar").get_by_role("link", name="SSH keys").click()
    page.fill("textarea[name=public_key]", _public_key(tmp_path))
    page.fill("input[name=name]", "mira-laptop")
    page.get_by_role("button", name="Add key").click()
    page.locator("table").get_by_text("mira-laptop", exact=True).wait_for()
    shoot(page, "33-journey-ssh-key")
    key = SshKey.objects.get(project=project)

    # --- A residency policy: EU only for this project ------------------------------------------
    page.locator(".sidebar").get_by_role("link", name="Data residency").first.click()
    page.wait_for_url("**/p/web-shop/residency/")
    page.fill("input[name=name]", "EU only")
    page.locator(".policy-form label", has_text="European Union").locator("input").check()
    page.get_by_role("button", name="Save policy").click()
    page.get_by_text("Residency policy saved").wait_for()
    shoot(page, "34-journey-residency-policy")

    # --- Launch: the wizard shows the forbidden zones with their reason -----------------------------
    page.locator(".sidebar").get_by_role("link", name="Servers").click()
    page.get_by_role("link", name=re.compile("Launch")).first.click()
    page.wait_for_url("**/servers/new/")
    reason = "Blocked by project policy 'EU only': Ashburn is in United States jurisdiction"
    ashburn = page.locator("#region-iad1")
    assert reason in ashburn.inner_text()
    assert ashburn.locator("input").count() == 0  # nothing to pick there
    page.fill("input[name=name]", "web")
    page.fill("input[name=count]", "2")
    choose(page, page.locator("#region-fra1 input[type=radio]").first, "Debian 13", "Starter 2")
    page.locator(f"input[name=ssh_keys][value='{key.pk}']").check()
    summary = page.locator("#launch-summary")
    summary.get_by_text("26.06 EUR").wait_for()  # 2 x (0.0110 + 50 x 0.000137) x 730
    shoot(page, "35-journey-forbidden-zone")

    # A forged request for a forbidden zone (a radio re-pointed at iad1-a) is refused with the reason.
    forbidden = Zone.objects.get(code="iad1-a")
    page.evaluate(
        """(pk) => {
            const radio = document.querySelector('#region-fra1 input[type=radio]');
            radio.value = pk;
            radio.checked = true;
        }""",
        str(forbidden.pk),
    )
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/servers/new/")
    ) as sent:
        summary.get_by_role("button", name="Launch 2 servers").click()
    assert sent.value.status == 403
    refusal = page.locator("#errors-zone")
    assert reason in refusal.inner_text()
    assert not Instance.objects.filter(project=project).exists()
    assert AuditEvent.objects.filter(project=project, action=AuditAction.PLACEMENT_DENIED).count() == 1
    shoot(page, "36-journey-forged-zone-refused")

    # --- Launch two servers in fra1-a and watch them come up without a reload -----------------------
    page.locator("#region-fra1 input[type=radio]").first.check()
    summary.get_by_text("fra1-a").wait_for()
    summary.get_by_text("26.06 EUR").wait_for()
    shoot(page, "37-journey-launch-wizard")
    launch_from_wizard(page, "Launch 2 servers")
    page.evaluate("window.__sameDocument = true")
    page.locator(".status-running").nth(1).wait_for(timeout=45_000)
    assert page.evaluate("window.__sameDocument === true")  # no reload happened
    servers = {i.name: i for i in Instance.objects.filter(project=project)}
    assert sorted(servers) == ["web-1", "web-2"]
    assert all(i.status == "running" and i.zone.code == "fra1-a" for i in servers.values())
    assert all(list(i.ssh_keys.all()) == [key] for i in servers.values())
    shoot(page, "38-journey-servers-running")

    # --- Stop and start web-1 ----------------------------------------------------------------
    page.get_by_role("link", name="web-1").click()
    page.locator("summary", has_text="Stop").click()  # asks once more: it ends running programs
    page.get_by_role("button", name="Stop web-1").click()
    page.locator("h1 .status-stopped").wait_for(timeout=30_000)
    page.get_by_role("button", name="Start").click()
    page.locator("h1 .status-running").wait_for(timeout=30_000)
    assert "ssh debian@" in page.locator("#instance-live").inner_text()
    shoot(page, "39-journey-stopped-and-started")

    # --- Terminate web-2 ---------------------------------------------------------------------
    page.goto(live_server.url + servers["web-2"].get_absolute_url())
    page.fill("#confirm-name", "web-2")
    page.get_by_role("button", name="Terminate").click()
    page.wait_for_url("**/servers/")
    assert page.get_by_text("Terminating web-2.").is_visible()
    page.locator("tr", has_text="web-2").wait_for(state="detached", timeout=30_000)  # gone from the list
    assert page.locator("tr", has_text="web-1").locator(".status-running").is_visible()
    assert Instance.objects.get(pk=servers["web-2"].pk).status == "terminated"
    shoot(page, "40-journey-terminated")

    # --- Usage: the last minutes, small but drawn --------------------------------------------------
    page.locator(".sidebar").get_by_role("link", name="Usage").first.click()
    page.locator(".usage-charts[data-drawn]").wait_for()
    assert page.locator(".usage-chart canvas").count() >= 1
    assert page.locator(".chart-problem").count() == 0
    totals = page.locator(".usage-totals")
    assert re.search(r"\d+\.\d\d\s+EUR", totals.inner_text())  # the cost figure, a few cents at most
    resources = page.locator("table", has_text="Hours running").inner_text()
    assert "web-1" in resources and "web-2" in resources
    assert UsageSegment.objects.filter(project=project, resource_id=servers["web-1"].pk).exists()
    shoot(page, "41-journey-usage-today")

    # --- A month's spend so far, and a budget it has used 80 % of ----------------------------------
    # A real month cannot pass in a test: a big server that ran earlier this month (db-1, Memory
    # 128, for up to four days until a minute ago) is written as the usage segments the metering
    # records for such a server. Early in a month (minutes old) it becomes a fleet of such servers,
    # so the month has cost at least 0.20 EUR at any time of the month.
    now = timezone.now()
    since = max(month_bounds(now)[0], now - timedelta(days=4))
    until = now - min(timedelta(minutes=1), (now - since) / 2)
    db_flavor = Flavor.objects.get(code="m-32vcpu-128gb")
    db_id = "00000000-0000-4000-8000-00000000db01"
    hours = Decimal((until - since).total_seconds()) / 3600
    fleet = max(1, math.ceil(Decimal("0.20") / (db_flavor.price_hourly * hours)))
    for meter, quantity, price, vcpus, ram in [
        ("compute", fleet, db_flavor.price_hourly, db_flavor.vcpus, db_flavor.ram_gib),
        ("disk", db_flavor.root_disk_gib, settings.PORTAL_DISK_PRICE_GIB_HOUR, 0, 0),
    ]:
        UsageSegment.objects.create(
            organization=org,
            project=project,
            resource_type="instance",
            resource_id=db_id,
            resource_name="db-1",
            zone=Zone.objects.get(code="fra1-a"),
            meter=meter,
            quantity=Decimal(quantity),
            unit_price=price,
            vcpus=vcpus,
            ram_gib=ram,
            started_at=since,
            ended_at=until,
        )
    page.reload()
    page.locator(".usage-charts[data-drawn]").wait_for()
    month_cost = Decimal(page.locator(".usage-totals .usage-figure").first.inner_text().split()[0])
    assert month_cost > 0
    assert "db-1" in page.locator("table", has_text="Hours running").inner_text()
    shoot(page, "42-journey-usage-with-month")

    spent = project_forecast(project, now=timezone.now()).spent
    assert spent >= Decimal("0.20")
    amount = (spent / Decimal("0.88")).quantize(Decimal("0.01"), ROUND_UP)  # about 88 % spent
    page.locator(".sidebar").get_by_role("link", name="Budget").click()
    page.fill("input[name=amount]", str(amount))
    page.locator("input[name=guard][value=off]").check()
    shoot(page, "43-journey-budget-set")
    page.get_by_role("button", name="Save budget").click()
    page.get_by_text("Budget saved.").wait_for()

    sent_before = len(mailoutbox)
    check_budgets()  # the beat task, as celery beat runs it every ten minutes
    check_budgets()  # and again: nothing is sent twice
    alerts = list(mailoutbox[sent_before:])
    assert len(alerts) == 1, [m.subject for m in alerts]
    alert = alerts[0]
    assert alert.to == [EMAIL]
    assert "Web shop has used 80 % of its budget" in alert.subject
    assert f"Budget:        {amount} EUR a month" in alert.body
    kinds = set(BudgetAlert.objects.filter(project=project).values_list("kind", flat=True))
    assert {AlertKind.SPENT_50, AlertKind.SPENT_80} <= kinds and AlertKind.SPENT_100 not in kinds

    page.reload()
    alerts_table = page.locator("table.budget-alerts")
    assert "80 % spent" in alerts_table.inner_text()
    badge = page.locator("#this-month .badge").inner_text()
    assert badge in ("Over 80 % used", "Heading over budget")  # the latter early in a month
    shoot(page, "44-journey-budget-alerts")

    mail = page.context.new_page()
    _open_mail(mail, alert)
    shoot(mail, "45-journey-budget-alert-email")
    mail.close()

    # --- The residency attestation: this month so far, the servers where they were ---------------
    page.locator(".sidebar").get_by_role("link", name="Residency attestation").click()
    page.wait_for_url("**/attestation/")
    today = timezone.now().date()
    assert page.locator(".attestation-period").inner_text().startswith(f"{today:%B %Y} so far")
    placed = page.locator(".table-attestation").inner_text()
    assert "web-1" in placed and "web-2" in placed and "fra1-a" in placed
    assert "Compliant" in page.locator(".attestation-verdict").inner_text()
    shoot(page, "46-journey-residency-attestation")
    assert not page.csp_violations
