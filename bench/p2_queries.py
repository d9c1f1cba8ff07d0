"""P2: SQL queries per page, the server list and a server's page, at the baseline and at N servers.

Each page is asked once before its queries are counted, as a customer coming back to it does; the
target is the same count at both sizes (nothing per row) and at most TARGET.
"""

from __future__ import annotations

TARGET = 8


def measure(seeded) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(seeded.user)
    counts = {}
    sizes = {"baseline": seeded.small, "big": seeded.big}
    for label, project in sizes.items():
        pages = {
            "list": f"/o/{project.organization.slug}/p/{project.slug}/servers/",
            "detail": project.instances.order_by("name").first().get_absolute_url(),
        }
        for page, url in pages.items():
            client.get(url, secure=True)
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url, secure=True)
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}")
            counts[f"{page}_{label}"] = len(queries)
    worst = max(counts.values())
    equal = all(counts[f"{page}_baseline"] == counts[f"{page}_big"] for page in ("list", "detail"))
    entry = {
        "value": worst,
        "target": TARGET,
        "unit": "queries",
        "met": equal and worst <= TARGET,
        "detail": counts
        | {
            "equal": equal,
            "servers_big": seeded.counts["servers"],
            "servers_baseline": seeded.counts["baseline"],
        },
    }
    print(f"P2 queries per page ({seeded.counts['baseline']} / {seeded.counts['servers']} servers):")
    for page in ("list", "detail"):
        print(f"  {page:<8} {counts[f'{page}_baseline']:>3} / {counts[f'{page}_big']}")
    return entry
