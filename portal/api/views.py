"""The API tokens page of an organization: your tokens (and, for owners and admins, everyone's),
create one (its secret is shown once, on the answer to the POST), revoke."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from portal.api import services
from portal.api.forms import TokenForm
from portal.api.models import ApiToken
from portal.tenancy.access import Access, Perm, org_access


def _page(
    request: HttpRequest,
    access: Access,
    form: TokenForm,
    *,
    created=None,
    secret: str = "",
    status: int = 200,
):
    tokens = ApiToken.objects.filter(organization=access.organization).select_related("project", "user")
    mine = [t for t in tokens if t.user_id == request.user.pk]
    others = [t for t in tokens if t.user_id != request.user.pk] if access.can(Perm.MEMBERS_MANAGE) else []
    return render(
        request,
        "api/tokens.html",
        {
            "access": access,
            "org": access.organization,
            "form": form,
            "mine": mine,
            "others": others,
            "created": created,
            "secret": secret,
            "api_root": request.build_absolute_uri(reverse("api-v1:api-root")),
            "rate_limit": settings.PORTAL_API_RATE_LIMIT_PER_MINUTE,
        },
        status=status,
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest, org_slug: str) -> HttpResponse:
    access = org_access(request.user, org_slug)
    if request.method == "GET":
        return _page(request, access, TokenForm(organization=access.organization))
    form = TokenForm(request.POST, organization=access.organization)
    if form.is_valid():
        data = form.cleaned_data
        try:
            token, secret = services.token_create(
                access=access,
                name=data["name"],
                scope=data["scope"],
                billing=data["billing"],
                days=data["days"],
                project=data["project"],
                request=request,
            )
        except services.TokenRefused as refused:
            form.add_error(refused.field if refused.field in form.fields else None, refused.message)
        else:
            # Rendered, not redirected: the secret is in this one answer and nowhere else.
            fresh = TokenForm(organization=access.organization)
            return _page(request, access, fresh, created=token, secret=secret, status=201)
    return _page(request, access, form, status=400)


@login_required
@require_POST
def token_revoke(request: HttpRequest, org_slug: str, token_id: int) -> HttpResponse:
    access = org_access(request.user, org_slug)
    token = ApiToken.objects.filter(organization=access.organization, pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    services.token_revoke(access=access, token=token, request=request)
    messages.success(request, f"Token “{token.name}” revoked: requests with it now get 401.")
    return redirect("api:tokens", org_slug=org_slug)
