"""The launch wizard as a hostile client or a new customer meets it: bounds on every number, every
problem shown at once, prices the size table and the summary agree on, a Launch button that is
off while the launch would be refused, private keys never echoed, out-of-band swaps with targets."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from portal.budgets.models import Budget
from portal.catalog.models import Flavor, Image, Jurisdiction
from portal.compute.models import Instance, SshKey
from portal.residency.models import ResidencyPolicy

PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


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


@pytest.fixture
def urls(project):
    args = [project.organization.slug, project.slug]
    return {
        "launch": reverse("compute:launch", args=args),
        "check": reverse("compute:launch_check", args=args),
    }


def _errors_of(page: str, field: str) -> list[str]:
    """The messages shown next to a field (its errors-<field> block)."""
    block = re.search(rf'<div id="errors-{field}" class="section-errors"[^>]*>(.*?)</div>', page, re.S)
    assert block, f"no error block for {field}"
    return re.findall(r'<p class="error">(.*?)</p>', block.group(1), re.S)


@pytest.mark.parametrize("where", ["launch", "check"])
@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"root_disk_gib": 10**30}, "root_disk_gib", "at most 4096 GiB"),
        ({"root_disk_gib": 4097}, "root_disk_gib", "at most 4096 GiB"),
        ({"root_disk_gib": -5}, "root_disk_gib", "at least 50 GiB"),
        ({"count": 10**30}, "count", "Launch between 1 and 20 servers"),
        ({"count": -1}, "count", "Launch between 1 and 20 servers"),
        ({"name": "a" * 300}, "name", "at most 63 characters"),
    ],
)
def test_out_of_bounds_numbers_are_a_message_not_a_500(
    form_data, urls, owner, client_as, change, field, message, where
):
    response = client_as(owner).post(urls[where], form_data | change)
    page = response.content.decode()
    assert response.status_code == (400 if where == "launch" else 200)
    assert any(message in e for e in _errors_of(page, field))
    assert not Instance.objects.exists()


def test_the_inputs_carry_the_bounds_the_service_checks(urls, owner, client_as, settings):
    settings.COMPUTE_MAX_LAUNCH_COUNT = 7
    page = client_as(owner).get(urls["launch"]).content.decode()
    assert re.search(r'<input type="number" name="count"[^>]* min="1" max="7"', page)
    assert re.search(r'<input type="number" name="root_disk_gib"[^>]* min="1" max="4096"', page)
    assert re.search(r'<input type="text" name="name"[^>]* maxlength="63"', page)
    assert "novalidate" in page  # the browser's check would stop at the first bad field


ALL_WRONG = {"count": 500, "name": "a" * 300, "root_disk_gib": 5, "user_data": "x" * 20_000}
ALL_WRONG_MESSAGES = {
    "count": "Launch between 1 and 20 servers at a time.",
    "name": "at most 63 characters",
    "root_disk_gib": "The root disk must be at least 50 GiB",
    "user_data": "User data is 19.5 KiB; the limit is 16 KiB.",
}


@pytest.mark.parametrize("where", ["launch", "check"])
def test_every_problem_is_shown_at_once_next_to_its_field_and_at_the_top(
    form_data, urls, owner, client_as, where
):
    page = client_as(owner).post(urls[where], form_data | ALL_WRONG).content.decode()
    for field, message in ALL_WRONG_MESSAGES.items():
        assert any(message in e for e in _errors_of(page, field)), field
    top = page[page.index('id="errors-__all__"') :]
    top = top[: top.index("</ul>")]
    assert "4 things to fix before launching" in top
    for field in ALL_WRONG_MESSAGES:
        assert f'href="#errors-{field}"' in top
    assert not Instance.objects.exists()


def test_a_valid_form_still_gets_every_rule_it_breaks(form_data, urls, owner, client_as):
    """The form parses; the rules it breaks come from the service, all of them."""
    windows = Image.objects.get(name="Windows Server 2025").pk
    data = form_data | {"image": windows, "root_disk_gib": 30, "user_data": "x" * 20_000, "count": 21}
    page = client_as(owner).post(urls["launch"], data).content.decode()
    assert _errors_of(page, "root_disk_gib") and _errors_of(page, "user_data") and _errors_of(page, "count")


def test_the_size_table_charges_what_the_summary_charges(form_data, urls, owner, client_as, catalog):
    """Standard 4: 0.0220 EUR/h and 80 GiB x 0.000137 EUR/h, 730 h: 16.06 + 8.00 = 24.06 a month."""
    standard = Flavor.objects.get(code="s-2vcpu-4gb")
    page = (
        client_as(owner)
        .post(urls["check"], form_data | {"flavor": standard.pk, "sections_zone": ""})
        .content.decode()
    )
    row = re.search(rf'id="flavor-{standard.pk}".*?</tr>', page, re.S).group(0)
    assert '<td class="num wide-only">0.0330</td><td class="num">24.06</td>' in row
    summary = page[page.index('id="launch-summary"') :]
    assert "<strong>24.06 EUR</strong>" in summary
    assert "Standard 4 with its 80 GiB disk: 24.06 EUR a month, as in the size table." in summary
    assert "include the size's disk" in page


def test_the_summary_names_what_it_adds_to_the_size_table(form_data, urls, owner, client_as):
    windows = Image.objects.get(name="Windows Server 2025")
    data = form_data | {"image": windows.pk, "root_disk_gib": 100}
    page = client_as(owner).post(urls["check"], data).content.decode()
    assert "plus 50 GiB more root disk and the Windows Server 2025 licence." in page


def _button(page: str) -> str:
    return re.search(r'<button type="submit" class="button launch-button"[^>]*>', page).group(0)


def test_over_quota_disables_the_button_and_says_why(form_data, urls, owner, client_as, project):
    project.quota_instances = 10
    project.save()
    page = client_as(owner).post(urls["check"], form_data | {"count": 16}).content.decode()
    assert "Instances: 16 of 10 — over quota" in page
    assert " disabled" in _button(page)
    assert "Over the project&#x27;s quota (Instances)" in page
    fine = client_as(owner).post(urls["check"], form_data | {"count": 2}).content.decode()
    assert " disabled" not in _button(fine) and "launch-blocked" not in fine


def test_over_quota_posted_anyway_is_refused(form_data, urls, owner, client_as, project):
    project.quota_instances = 10
    project.save()
    response = client_as(owner).post(urls["launch"], form_data | {"count": 16})
    assert response.status_code == 403 and not Instance.objects.exists()


def test_a_blocking_budget_guard_disables_the_button(form_data, urls, owner, client_as, project):
    Budget.objects.create(project=project, amount=Decimal("1.00"), guard="block")
    page = client_as(owner).post(urls["check"], form_data | {"count": 5}).content.decode()
    assert " disabled" in _button(page) and "its guard blocks such launches" in page
    response = client_as(owner).post(urls["launch"], form_data | {"count": 5})
    assert response.status_code == 403 and not Instance.objects.exists()


def test_a_zone_the_policy_forbids_disables_the_button(form_data, urls, owner, client_as, org, catalog):
    policy = ResidencyPolicy.objects.create(organization=org, name="EU only")
    policy.jurisdictions.set(Jurisdiction.objects.filter(code="eu"))
    data = form_data | {"zone": catalog["iad1-a"].pk}  # a stale page, or a forged one
    page = client_as(owner).post(urls["check"], data).content.decode()
    assert " disabled" in _button(page) and "Ashburn is in United States jurisdiction" in page
    response = client_as(owner).post(urls["launch"], data)
    assert response.status_code == 403 and not Instance.objects.exists()


@pytest.mark.parametrize("where", ["launch", "check"])
def test_a_pasted_private_key_is_refused_and_never_shown_back(form_data, urls, owner, client_as, where):
    response = client_as(owner).post(urls[where], form_data | {"new_ssh_key": PRIVATE_KEY})
    page = response.content.decode()
    assert "b3BlbnNzaC1rZXktdjEA" not in page and "BEGIN OPENSSH" not in page
    assert _errors_of(page, "new_ssh_key") == [
        "That is a private key — paste the .pub file&#x27;s contents; never share the private key."
    ]
    # The box comes back empty (the check swaps it out of band, emptied).
    box = re.search(r'<div class="field" id="field-new_ssh_key"[^>]*>.*?</textarea>', page, re.S).group(0)
    assert re.search(r"<textarea[^>]*>\s*</textarea>", box)
    assert not Instance.objects.exists() and not SshKey.objects.exists()


def test_every_out_of_band_swap_of_the_check_has_a_target_on_the_page(form_data, urls, owner, client_as):
    """htmx logs htmx:oobErrorNoTarget for an out-of-band element the page has no id for."""
    client = client_as(owner)
    page = client.get(urls["launch"]).content.decode()
    ids = set(re.findall(r'\sid="([^"]+)"', page))
    check = client.post(urls["check"], form_data | ALL_WRONG | {"new_ssh_key": PRIVATE_KEY}).content.decode()
    swapped = re.findall(r'<[a-z]+ [^>]*\bid="([^"]+)"[^>]*hx-swap-oob="true"', check)
    assert "errors-termination_protection" in swapped and "field-new_ssh_key" in swapped
    assert set(swapped) <= ids, set(swapped) - ids


def test_a_long_name_is_listed_short_in_the_summary(form_data, urls, owner, client_as):
    name = "a" * 61
    page = client_as(owner).post(urls["check"], form_data | {"name": name, "count": 9}).content.decode()
    summary = page[page.index('id="launch-summary"') :]
    assert f'<dd class="user-text">{name}-1 … {name}-9</dd>' in summary
    bad = client_as(owner).post(urls["check"], form_data | {"name": "a" * 300}).content.decode()
    assert "a" * 64 not in bad[bad.index('id="launch-summary"') :]
