"""Who hears about a project's money, and the links their e-mail carries."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from portal.core.mail import mail_after_commit
from portal.tenancy.models import Membership, Project, Role


def owner_emails(project: Project) -> list[str]:
    return list(
        Membership.objects.filter(organization_id=project.organization_id, role=Role.OWNER)
        .order_by("created_at")
        .values_list("user__email", flat=True)
    )


def absolute(path: str) -> str:
    return settings.PORTAL_BASE_URL + path


def usage_path(project: Project) -> str:
    return reverse("metering:project_usage", args=[project.organization.slug, project.slug])


def usage_url(project: Project) -> str:
    return absolute(usage_path(project))


def budget_url(project: Project) -> str:
    return absolute(reverse("budgets:project_budget", args=[project.organization.slug, project.slug]))


def leases_url(project: Project) -> str:
    return absolute(reverse("budgets:project_leases", args=[project.organization.slug, project.slug]))


def mail_each(template: str, to: list[str], context: dict) -> None:
    """One message per recipient (owners do not see each other's addresses), after commit."""
    context = {"base_url": settings.PORTAL_BASE_URL, "currency": settings.PORTAL_CURRENCY, **context}
    for address in dict.fromkeys(to):
        mail_after_commit(template=template, to=[address], context=context)
