"""Firewall rule sets: list and create (empty or from a preset), one set's rules, delete."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Prefetch, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.audit.services import client_ip
from portal.compute.models import FirewallRule, FirewallRuleSet, Instance, InstanceStatus, Protocol
from portal.compute.operations.firewalls import firewall_refusal
from portal.compute.presets import Preset, presets_for
from portal.compute.services import ComputeRefused
from portal.compute.services import firewalls as firewall_services
from portal.compute.views.common import apply_problems, refusal_status
from portal.tenancy.access import Access, Perm, project_access


class FirewallForm(forms.Form):
    name = forms.CharField(
        required=False,
        max_length=80,
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "web-servers"}),
        help_text="Optional with a preset: it is named after the preset.",
    )
    preset = forms.ChoiceField(required=False, widget=forms.RadioSelect, label="Start with")

    def __init__(self, *args, presets: dict, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["preset"].choices = [("", "No rules"), *((p.key, p.label) for p in presets.values())]


class RuleForm(forms.Form):
    protocol = forms.ChoiceField(choices=Protocol.choices, initial=Protocol.TCP)
    # The service checks the range (and says so for both ports at once); the inputs show it.
    port_from = forms.IntegerField(
        required=False,
        label="From port",
        widget=forms.NumberInput(
            attrs={"min": firewall_services.PORT_MIN, "max": firewall_services.PORT_MAX, "placeholder": "22"}
        ),
    )
    port_to = forms.IntegerField(
        required=False,
        label="To port",
        widget=forms.NumberInput(
            attrs={
                "min": firewall_services.PORT_MIN,
                "max": firewall_services.PORT_MAX,
                "placeholder": "same",
            }
        ),
    )
    source = forms.CharField(
        max_length=100,
        error_messages={
            "required": "Enter where traffic may come from, e.g. 203.0.113.7/32, or 0.0.0.0/0 for anywhere."
        },
        widget=forms.TextInput(
            attrs={"placeholder": "0.0.0.0/0", "spellcheck": "false", "autocomplete": "off"}
        ),
    )
    description = forms.CharField(
        required=False,
        max_length=firewall_services.DESCRIPTION_MAX_LENGTH,
        widget=forms.TextInput(attrs={"placeholder": "SSH from the office"}),
    )


def _get_rule_set(access: Access, firewall_id: int) -> FirewallRuleSet:
    rule_set = FirewallRuleSet.objects.filter(project=access.project, pk=firewall_id).first()
    if rule_set is None:
        raise Http404("No such firewall.")
    return rule_set


def _refusal(form: forms.Form, refused: ComputeRefused) -> int:
    return refusal_status(form, refused)


# --- The list ---------------------------------------------------------------------------------


def _source_text(source: str) -> str:
    return "anywhere" if source in ("0.0.0.0/0", "::/0") else source


def preset_summary(preset: Preset) -> str:
    """What a preset allows in one line: “Allows TCP 80, 443 and 22 from anywhere.”"""
    groups: dict[tuple[str, str], list[str]] = {}
    for protocol, port_from, port_to, source, _ in preset.rules:
        port = str(port_from) if port_from == port_to else f"{port_from}-{port_to}"
        groups.setdefault((Protocol(protocol).label, source), []).append(port)
    parts = []
    for (protocol, source), ports in groups.items():
        listed = ports[0] if len(ports) == 1 else ", ".join(ports[:-1]) + f" and {ports[-1]}"
        parts.append(f"{protocol} {listed} from {_source_text(source)}")
    return "Allows " + "; ".join(parts) + "."


def _list_page(request: HttpRequest, access: Access, form: FirewallForm, status: int = 200) -> HttpResponse:
    rule_sets = (
        FirewallRuleSet.objects.filter(project=access.project)
        .annotate(servers=Count("instances", filter=~Q(instances__status=InstanceStatus.TERMINATED)))
        .prefetch_related(Prefetch("rules", queryset=FirewallRule.objects.order_by("protocol", "port_from")))
    )
    presets = presets_for(client_ip(request))
    return render(
        request,
        "compute/firewalls.html",
        {
            "access": access,
            "org": access.organization,
            "project": access.project,
            "rule_sets": rule_sets,
            "form": form,
            "presets": [(p, preset_summary(p)) for p in presets.values()],
            "can_create": access.can(Perm.RESOURCE_CREATE),
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def firewalls(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug)
    presets = presets_for(client_ip(request))
    if request.method == "GET":
        return _list_page(request, access, FirewallForm(presets=presets))
    access.require(Perm.RESOURCE_CREATE)
    form = FirewallForm(request.POST, presets=presets)
    status = 400
    if form.is_valid():
        try:
            rule_set = firewall_services.firewall_create(
                access=access,
                name=form.cleaned_data["name"],
                preset=form.cleaned_data["preset"] or None,
                client_ip=client_ip(request),
                request=request,
            )
        except ComputeRefused as refused:
            status = _refusal(form, refused)
        else:
            messages.success(request, f"Firewall “{rule_set.name}” created.")
            return redirect(
                "compute:firewall_detail",
                org_slug=org_slug,
                project_slug=project_slug,
                firewall_id=rule_set.pk,
            )
    return _list_page(request, access, form, status)


# --- One rule set -----------------------------------------------------------------------------


def _servers_with_state(rule_set: FirewallRuleSet) -> list[tuple[Instance, str]]:
    """The servers using the rule set, each with why its zone applies no rules ("" when it does)."""
    servers = list(
        Instance.objects.filter(firewall=rule_set).visible().select_related("zone").order_by("name")
    )
    refusals = {}
    for server in servers:
        if server.zone_id not in refusals:
            refusals[server.zone_id] = firewall_refusal(server.zone)
    return [(server, refusals[server.zone_id]) for server in servers]


def detail_page(
    request: HttpRequest,
    access: Access,
    rule_set: FirewallRuleSet,
    form: RuleForm | None = None,
    status: int = 200,
) -> HttpResponse:
    mine = presets_for(client_ip(request)).get("ssh-my-ip")
    return render(
        request,
        "compute/firewall_detail.html",
        {
            "access": access,
            "org": access.organization,
            "project": access.project,
            "rule_set": rule_set,
            "rules": rule_set.rules.order_by("protocol", "port_from", "source"),
            "servers": _servers_with_state(rule_set),
            "form": form or RuleForm(),
            "my_cidr": mine.rules[0][3] if mine else "",
            "can_operate": access.can(Perm.RESOURCE_OPERATE),
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def firewall_detail(request: HttpRequest, org_slug: str, project_slug: str, firewall_id: int) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug)
    rule_set = _get_rule_set(access, firewall_id)
    if request.method == "GET":
        return detail_page(request, access, rule_set)
    access.require(Perm.RESOURCE_OPERATE)
    form = RuleForm(request.POST)
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        try:
            rule = firewall_services.firewall_rule_add(
                access=access,
                rule_set=rule_set,
                protocol=data["protocol"],
                port_from=data["port_from"],
                port_to=data["port_to"],
                source=data["source"],
                description=data["description"],
                request=request,
            )
        except ComputeRefused as refused:
            status = _refusal(form, refused)
        else:
            messages.success(request, f"Rule added: {rule}.")
            return redirect(
                "compute:firewall_detail",
                org_slug=org_slug,
                project_slug=project_slug,
                firewall_id=rule_set.pk,
            )
    else:  # what did parse may be wrong too: say so now, not on the next attempt
        data = form.cleaned_data
        apply_problems(
            form,
            firewall_services.rule_problems(
                data.get("protocol", Protocol.TCP),
                data.get("port_from"),
                data.get("port_to"),
                data.get("source", ""),
                data.get("description", ""),
            ),
        )
    return detail_page(request, access, rule_set, form, status)


@login_required
@require_POST
def firewall_rule_delete(
    request: HttpRequest, org_slug: str, project_slug: str, firewall_id: int, rule_id: int
) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    rule_set = _get_rule_set(access, firewall_id)
    rule = rule_set.rules.filter(pk=rule_id).first()
    if rule is None:
        raise Http404("No such rule.")
    try:
        firewall_services.firewall_rule_delete(access=access, rule=rule, request=request)
    except ComputeRefused as refused:
        messages.error(request, refused.message)
        return detail_page(request, access, rule_set, status=refused.status)
    messages.success(request, f"Rule removed: {rule}.")
    return redirect(
        "compute:firewall_detail", org_slug=org_slug, project_slug=project_slug, firewall_id=rule_set.pk
    )


@login_required
@require_POST
def firewall_delete(request: HttpRequest, org_slug: str, project_slug: str, firewall_id: int) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    rule_set = _get_rule_set(access, firewall_id)
    try:
        firewall_services.firewall_delete(access=access, rule_set=rule_set, request=request)
    except ComputeRefused as refused:
        messages.error(request, refused.message)
        return detail_page(request, access, rule_set, status=refused.status)
    messages.success(request, f"Firewall “{rule_set.name}” deleted.")
    return redirect("compute:firewalls", org_slug=org_slug, project_slug=project_slug)
