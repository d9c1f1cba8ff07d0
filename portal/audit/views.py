from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from portal.audit.models import AuditAction, AuditEvent
from portal.tenancy.access import Perm, org_access


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(required=False, choices=[("", "All actions"), *AuditAction.choices])
    actor = forms.CharField(
        required=False, label="Who", widget=forms.TextInput(attrs={"placeholder": "e-mail"})
    )
    project = forms.ChoiceField(required=False)
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))


@login_required
@require_safe
def audit_log(request: HttpRequest, org_slug: str) -> HttpResponse:
    access = org_access(request.user, org_slug, Perm.AUDIT_VIEW)
    org = access.organization
    form = AuditFilterForm(request.GET or None)
    form.fields["project"].choices = [
        ("", "All projects"),
        *((str(p.pk), p.name) for p in org.projects.all()),
    ]
    events = AuditEvent.objects.filter(organization=org).select_related("project")
    status = 200
    if form.is_bound:
        if form.is_valid():
            data = form.cleaned_data
            if data["action"]:
                events = events.filter(action=data["action"])
            if data["actor"]:
                events = events.filter(actor_email__icontains=data["actor"].strip())
            if data["project"]:
                events = events.filter(project_id=data["project"])
            if data["since"]:
                events = events.filter(created_at__date__gte=data["since"])
            if data["until"]:
                events = events.filter(created_at__date__lte=data["until"])
        else:
            status = 400
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audit/audit_log.html",
        {"access": access, "org": org, "form": form, "page": page, "query": query.urlencode()},
        status=status,
    )
