"""The form on a server's page that attaches, switches or detaches its rule set
(services/instance_firewall.py); the card it posts from is views/firewall_card.py."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from portal.compute.models import FirewallRuleSet
from portal.compute.services.common import ComputeRefused
from portal.compute.services.instance_firewall import instance_firewall_set
from portal.compute.views.common import get_instance
from portal.compute.views.instances import detail_page
from portal.lib.ids import as_id
from portal.tenancy.access import Perm, project_access


@login_required
@require_POST
def instance_firewall(request: HttpRequest, org_slug: str, project_slug: str, instance_id) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    instance = get_instance(access, instance_id)
    raw = request.POST.get("firewall", "")
    rule_set = None
    if raw:
        rule_set = FirewallRuleSet.objects.filter(project=access.project, pk=as_id(raw)).first()
        if as_id(raw) is None or rule_set is None:
            messages.error(request, "Choose one of the project's firewalls.")
            return detail_page(request, access, instance, 400)
    try:
        op = instance_firewall_set(access=access, instance=instance, rule_set=rule_set, request=request)
    except ComputeRefused as refused:
        for problem in refused.problems:
            messages.error(request, problem.message)
        return detail_page(request, access, instance, refused.status)
    if op is None:
        messages.info(request, f"{instance.name} already has that firewall; its rules are applied.")
    else:
        what = f"the “{rule_set.name}” rules" if rule_set else "“all inbound traffic allowed”"
        messages.success(request, f"Applying {what} to {instance.name}. This page follows it.")
    return redirect(instance.get_absolute_url())
