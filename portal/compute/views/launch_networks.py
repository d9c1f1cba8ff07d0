"""The launch wizard's private networks: what its Private networks part and its summary show. The
rules are the service's (compute/services/networks.py, launch_network_problems); this only reads."""

from __future__ import annotations

from django.urls import reverse

from portal.compute.models import Network, NetworkStatus
from portal.compute.services.networks import launch_networks_find, network_refusal


def launch_networks_context(project, form, zone, redraw: bool) -> dict:
    refusal = network_refusal(zone) if zone is not None else ""
    sent = [str(v).strip() for v in form["networks"].value() or []]
    chosen = []
    if sent and not refusal:
        # Parsed with the form unless a rule refused the field (its cleaned value is then gone):
        # the summary still lists the networks of the project that were found.
        parsed = getattr(form, "cleaned_data", {}).get("networks")
        chosen = list((parsed or launch_networks_find(project, sent)).networks)
    choices = []
    if redraw and zone is not None and not refusal:
        choices = list(
            Network.objects.existing()
            .filter(project=project, zone=zone, status=NetworkStatus.AVAILABLE)
            .order_by("name")
        )
    create_url = reverse("compute:networks", args=[project.organization.slug, project.slug])
    return {
        "refusal": refusal,
        "chosen": chosen,
        "chosen_ids": set(sent),
        "choices": choices,
        "create_url": f"{create_url}?zone={zone.pk}#new-network" if zone is not None else create_url,
    }
