from __future__ import annotations

from types import SimpleNamespace

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from portal.core.mail import send_after_commit


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        # Render now (the request and its objects are still here), deliver once the transaction
        # that produced the mail has committed: no mail about a sign-up that was rolled back.
        request = allauth_context.request
        site = SimpleNamespace(name=settings.SITE_NAME, domain=request.get_host() if request else "")
        message = self.render_mail(
            template_prefix,
            email,
            {
                "request": request,
                "email": email,
                "current_site": site,
                "site_name": settings.SITE_NAME,
                **context,
            },
        )
        send_after_commit(message)

    def get_signup_redirect_url(self, request: HttpRequest) -> str:
        # "home" sends a newcomer to onboarding, or back to the invitation they came from.
        return reverse("home")
