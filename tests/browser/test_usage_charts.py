"""What the usage graphs draw for little data: axis ticks at round steps, and a CPU graph of a
single sample that shows the sample instead of an empty canvas."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.catalog.models import Zone
from portal.compute.models import SimulatedServer
from portal.metering.models import UsageSegment
from tests.browser.test_usage import _signed_in
from tests.factories import InstanceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Pixels of the CPU series' colour (#2f5bea) on the graph's canvas.
BLUE_PIXELS = """(el) => {
    const canvas = el.querySelector("canvas");
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let count = 0;
    for (let i = 0; i < data.length; i += 4) {
        if (Math.abs(data[i] - 47) < 30 && Math.abs(data[i + 1] - 91) < 30 && data[i + 2] > 200) count++;
    }
    return count;
}"""


def _is_round_step(step: float) -> bool:
    mantissa = step / 10 ** math.floor(math.log10(step))
    return any(abs(mantissa - m) < 1e-6 for m in (1, 2, 5))


def _ticks(page, chart: str) -> list[str]:
    return page.locator(f"[data-chart={chart}]").get_attribute("data-axis-ticks").split(" | ")


def test_axes_tick_at_round_numbers(live_server, new_page):
    page, project = _signed_in(new_page, live_server)
    # 40 minutes of a 2 GiB server today: 1.33 GiB-hours, the scale where ticks read 0.3, 0.5, 0.8.
    start = timezone.now() - timedelta(minutes=41)
    UsageSegment.objects.create(
        organization=project.organization,
        project=project,
        resource_type="instance",
        resource_id="00000000-0000-4000-8000-0000000000a1",
        resource_name="web-1",
        zone=Zone.objects.get(code="fra1-a"),
        meter="compute",
        quantity=Decimal(1),
        unit_price=Decimal("0.0110"),
        vcpus=1,
        ram_gib=2,
        started_at=start,
        ended_at=start + timedelta(minutes=40),
    )

    page.goto(live_server.url + reverse("metering:project_usage", args=[project.organization.slug, project.slug]))
    page.locator(".usage-charts[data-drawn]").wait_for()

    for chart in ("ram_gib_hours", "vcpu_hours", "cost"):
        labels = _ticks(page, chart)
        values = [float(label.replace(",", "")) for label in labels]
        steps = {round(b - a, 6) for a, b in pairwise(values)}
        assert len(steps) == 1 and _is_round_step(steps.pop()), (chart, labels)
        decimals = {len(label.split(".")[1]) if "." in label else 0 for label in labels}
        assert len(decimals) == 1, (chart, labels)  # one format per axis
    # Each tick a whole number of steps (0.3, 0.5, 0.8 is the quarter step shown at one decimal).
    # The scale itself depends on the clock: run just after midnight, the 40 minutes fall on two days.
    ram = [float(label) for label in _ticks(page, "ram_gib_hours")]
    step = ram[1] - ram[0]
    assert len(ram) >= 3 and all(abs(value / step - round(value / step)) < 1e-6 for value in ram), ram
    assert _ticks(page, "cost")[1] == "0.01"  # cents on a money axis, never 0.005


def test_a_single_cpu_sample_is_drawn_and_explained(live_server, new_page, tmp_path):
    page, project = _signed_in(new_page, live_server)
    now = timezone.now()
    # The simulated cloud samples a day's window every 5 minutes: a server made just before the
    # last 5-minute mark has exactly one sample.
    mark = datetime.fromtimestamp(math.floor(now.timestamp() / 300) * 300, tz=UTC)
    instance = InstanceFactory(project=project, name="web-1", backend_id="sim-one0001", running_since=mark)
    SimulatedServer.objects.create(
        backend_id="sim-one0001",
        idempotency_key=str(instance.pk),
        zone_code="fra1-a",
        name="web-1",
        vcpus=1,
        ram_gib=2,
        flavor_code="s-1vcpu-2gb",
        state="running",
    )
    SimulatedServer.objects.filter(backend_id="sim-one0001").update(created_at=mark - timedelta(seconds=10))

    page.goto(live_server.url + instance.get_absolute_url())
    page.locator(".cpu-panel[data-drawn] canvas").wait_for()

    summary = page.locator("#cpu-summary").inner_text()
    assert "Only one sample so far" in summary and "Not enough data for a line yet" in summary
    assert page.locator("[data-chart=cpu]").evaluate(BLUE_PIXELS) > 20  # the sample, as a dot
    page.locator(".instance-usage").screenshot(path=str(tmp_path / "cpu.png"))
    assert not page.csp_violations
