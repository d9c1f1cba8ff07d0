"""The project's SSH keys: list, add (paste a public key), delete."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.compute.models import InstanceStatus, SshKey
from portal.compute.services import ComputeRefused
from portal.compute.services import keys as key_services
from portal.compute.sshkeys import (
    MAX_KEY_LENGTH,
    PRIVATE_KEY_MESSAGE,
    InvalidKey,
    looks_private,
    parse_public_key,
)
from portal.compute.views.common import refusal_status
from portal.tenancy.access import Access, Perm, project_access


class SshKeyForm(forms.Form):
    name = forms.CharField(
        required=False,
        max_length=80,
        help_text="Optional: without one, the key's comment (often you@laptop) is used.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "laptop"}),
    )
    public_key = forms.CharField(
        label="Public key",
        max_length=MAX_KEY_LENGTH,
        error_messages={"required": "Paste a public key, e.g. the contents of ~/.ssh/id_ed25519.pub."},
        widget=forms.Textarea(
            attrs={
                "rows": 3,
                "spellcheck": "false",
                "placeholder": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… you@laptop",
            }
        ),
    )


def _get_key(access: Access, key_id: int) -> SshKey:
    key = SshKey.objects.filter(project=access.project, pk=key_id).first()
    if key is None:
        raise Http404("No such SSH key.")
    return key


def _page(request: HttpRequest, access: Access, form: SshKeyForm, status: int = 200) -> HttpResponse:
    keys = list(
        SshKey.objects.filter(project=access.project)
        .select_related("created_by")
        .annotate(servers=Count("instances", filter=~Q(instances__status=InstanceStatus.TERMINATED)))
    )
    for key in keys:
        key.type_label = key_services.key_type_label(key.key_type)
    return render(
        request,
        "compute/ssh_keys.html",
        {
            "access": access,
            "org": access.organization,
            "project": access.project,
            "keys": keys,
            "form": form,
            "can_create": access.can(Perm.RESOURCE_CREATE),
            "can_operate": access.can(Perm.RESOURCE_OPERATE),
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def ssh_keys(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug)
    if request.method == "GET":
        return _page(request, access, SshKeyForm())
    access.require(Perm.RESOURCE_CREATE)
    form = SshKeyForm(request.POST)
    if looks_private(form.data.get("public_key", "")):
        # Refused below as any bad key is, but never shown back: the page could be cached or shared.
        form.data = form.data.copy()
        form.data["public_key"] = ""
        form.add_error("public_key", PRIVATE_KEY_MESSAGE)
        return _page(request, access, form, 400)
    status = 400
    if form.is_valid():
        try:
            key = key_services.ssh_key_add(
                access=access,
                name=form.cleaned_data["name"],
                public_key=form.cleaned_data["public_key"],
                request=request,
            )
        except ComputeRefused as refused:
            status = refusal_status(form, refused)
        else:
            messages.success(request, f"Key “{key.name}” added. You can choose it when you launch servers.")
            return redirect("compute:ssh_keys", org_slug=org_slug, project_slug=project_slug)
    elif "public_key" not in form.errors:  # the name is wrong: say at once if the key is too
        try:
            parse_public_key(form.cleaned_data["public_key"])
        except InvalidKey as error:
            form.add_error("public_key", str(error))
    return _page(request, access, form, status)


@login_required
@require_POST
def ssh_key_delete(request: HttpRequest, org_slug: str, project_slug: str, key_id: int) -> HttpResponse:
    access = project_access(request.user, org_slug, project_slug, Perm.RESOURCE_OPERATE)
    key = _get_key(access, key_id)
    key_services.ssh_key_delete(access=access, key=key, request=request)
    messages.success(request, f"Key “{key.name}” removed from the project. Servers that have it keep it.")
    return redirect("compute:ssh_keys", org_slug=org_slug, project_slug=project_slug)
