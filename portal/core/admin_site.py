from __future__ import annotations

from functools import update_wrapper

from allauth.account.decorators import secure_admin_login
from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib import admin, messages
from django.shortcuts import redirect


class PortalAdminSite(admin.AdminSite):
    """Django admin for operators. Sign-in goes through allauth (same rate limits and MFA stage)."""

    site_header = f"{settings.SITE_NAME} operations"
    site_title = f"{settings.SITE_NAME} operations"
    index_title = "Catalog, customers and quotas"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.login = secure_admin_login(super().login)

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        def wrapper(request, *args, **kwargs):
            user = request.user
            if (
                settings.PORTAL_ADMIN_REQUIRE_MFA
                and user.is_authenticated
                and user.is_staff
                and not is_mfa_enabled(user)
            ):
                messages.warning(
                    request, "Operators must turn on two-factor authentication before using admin."
                )
                return redirect("mfa_index")
            return inner(request, *args, **kwargs)

        return update_wrapper(wrapper, view)
