"""Page times: what a signed-in owner waits for inside Django, at N servers and at the baseline.

The server list (its first page), a server's page and a project's usage JSON for 30 days, through
django.test.Client (no HTTP server), DEBUG off and the cache as configured: the median of
`requests` requests after `warmup`, the six (page, size) pairs taken in turns. The ratio N ÷
baseline is what the page's cost grows by with the project; the times themselves depend on the
machine. No target: a record to compare checkouts with.
"""

from __future__ import annotations

from decimal import Decimal

from bench.common import median, timed_in_turns

PAGES = ("server_list", "server_detail", "usage_json_30d")


def urls(project) -> dict[str, str]:
    from django.urls import reverse

    org, slug = project.organization.slug, project.slug
    return {
        "server_list": reverse("compute:instance_list", args=[org, slug]),
        "server_detail": project.instances.order_by("name").first().get_absolute_url(),
        "usage_json_30d": reverse("metering:project_usage_json", args=[org, slug]) + "?period=30d",
    }


def measure(seeded, requests: int, warmup: int) -> dict:
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(seeded.user)
    sizes = {"baseline": seeded.small, "big": seeded.big}
    calls, usage = {}, {}
    for size, project in sizes.items():
        for page, url in urls(project).items():
            response = client.get(url, secure=True)
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}")
            if page == "usage_json_30d":
                report = response.json()
                usage[size] = {"days_with_cost": _days_with_cost(report), "cost": report["totals"]["cost"]}
                if usage[size]["days_with_cost"] < len(report["days"]):
                    raise RuntimeError(f"{url} has days without usage: the seeded history is too short")
            calls[f"{page}:{size}"] = lambda url=url: client.get(url, secure=True)
    samples = timed_in_turns(calls, rounds=requests, warmup=warmup)
    figures = {}
    for page in PAGES:
        baseline, big = median(samples[f"{page}:baseline"]), median(samples[f"{page}:big"])
        figures[page] = {"ms_baseline": baseline, "ms_big": big, "ratio": round(big / baseline, 2)}
    n, b = seeded.counts["servers"], seeded.counts["baseline"]
    print(f"\npage times, median of {requests} requests (ms)")
    print(f"{'':18} {f'{b} servers':>12} {f'{n} servers':>14} {'ratio':>7}")
    for page, f in figures.items():
        print(f"{page:18} {f['ms_baseline']:>12.2f} {f['ms_big']:>14.2f} {f['ratio']:>7.2f}")
    worst = max(figures, key=lambda page: figures[page]["ratio"])
    return {
        "value": figures[worst]["ratio"],
        "target": None,
        "unit": "ratio",
        "met": None,
        "detail": figures
        | {
            "value_is": f"the largest ratio, ms at {n} servers / ms at {b} ({worst})",
            "servers_big": n,
            "servers_baseline": b,
            "requests": requests,
            "warmup": warmup,
            "usage_json": usage,
            "cache": settings.CACHES["default"]["BACKEND"],
            "debug": settings.DEBUG,
            "seeded": seeded.counts,
        },
    }


def _days_with_cost(report: dict) -> int:
    return sum(Decimal(cost) > 0 for cost in report["cost"])
