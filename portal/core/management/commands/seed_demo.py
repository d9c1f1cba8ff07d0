"""Demo accounts, an organization and two projects, so a fresh checkout has something to click.

Idempotent: whatever already exists is left as it is (a changed password or role is kept), so
`make run` can call it every time.
"""

from __future__ import annotations

from decimal import Decimal

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from portal.audit.models import AuditAction
from portal.audit.services import audit_record
from portal.budgets.models import Budget, GuardMode
from portal.catalog.demo import load_demo_catalog
from portal.metering.demo import load_demo_usage
from portal.tenancy.models import Membership, Organization, Project, Role

DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - published demo credential, DEBUG only

OPERATOR = ("operator@demo.test", "Olive Operator")
CUSTOMER = ("customer@demo.test", "Dana Customer")
TEAMMATES = [
    ("admin@demo.test", "Alex Admin", Role.ADMIN),
    ("member@demo.test", "Morgan Member", Role.MEMBER),
    ("viewer@demo.test", "Vic Viewer", Role.VIEWER),
]
ORGANIZATION = ("acme", "Acme Research")
PROJECTS = [("web-shop", "Web shop"), ("data-lab", "Data lab")]


class Command(BaseCommand):
    help = (
        "Load the demo catalog, demo users, the 'Acme Research' organization and its projects (idempotent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG off. The demo password is public: never use on a real site.",
        )

    def handle(self, *args, **options) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "DEBUG is off, so this looks like a real deployment: refusing to create demo "
                "accounts with a published password. Pass --force if you really mean it."
            )
        self._seed()
        self._print_summary()

    @transaction.atomic
    def _seed(self) -> None:
        load_demo_catalog()
        self._user(*OPERATOR, is_staff=True, is_superuser=True)
        customer = self._user(*CUSTOMER)

        org, created = Organization.objects.get_or_create(
            slug=ORGANIZATION[0], defaults={"name": ORGANIZATION[1], "created_by": customer}
        )
        if created:
            # The one audit event a real signup would leave; the rest is demo scaffolding.
            audit_record(action=AuditAction.ORG_CREATED, actor=customer, organization=org, target=org)
        members = [(customer, Role.OWNER)]
        members += [(self._user(email, name), role) for email, name, role in TEAMMATES]
        for user, role in members:
            Membership.objects.get_or_create(organization=org, user=user, defaults={"role": role})

        quotas = Project()
        quotas.apply_default_quotas()
        for slug, name in PROJECTS:
            Project.objects.get_or_create(
                organization=org,
                slug=slug,
                defaults={
                    "name": name,
                    "created_by": customer,
                    **{f: getattr(quotas, f) for f in Project.QUOTA_FIELDS},
                },
            )
        web_shop = Project.objects.get(organization=org, slug=PROJECTS[0][0])
        load_demo_usage(web_shop)  # a month of graphs
        # A budget the demo history has used 85 % of, whatever the day: the first budget check
        # (celery beat runs it at start) e-mails the owner about the 50 % and 80 % thresholds.
        Budget.objects.get_or_create(
            project=web_shop, defaults={"amount": Decimal("300.00"), "guard": GuardMode.WARN}
        )

    @staticmethod
    def _user(email: str, name: str, **flags):
        User = get_user_model()
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            # The password is only set here, so a password changed through the UI survives.
            user = User.objects.create_user(email=email, password=DEMO_PASSWORD, name=name, **flags)
        EmailAddress.objects.get_or_create(
            user=user,
            email__iexact=email,
            defaults={"email": email, "verified": True, "primary": True},
        )
        return user

    def _print_summary(self) -> None:
        url = settings.PORTAL_BASE_URL  # $PORT's, as `make run` serves it
        lines = [
            "Demo data is ready.",
            "",
            f"  Portal     {url}",
            f"  Customer   {CUSTOMER[0]}  /  {DEMO_PASSWORD}   (owner of {ORGANIZATION[1]})",
            "             teammates: " + ", ".join(email for email, _, _ in TEAMMATES),
            "             (same password)",
            f"  Operator   {OPERATOR[0]}  /  {DEMO_PASSWORD}   (staff + superuser)",
            f"  Admin      {url}/admin/",
        ]
        width = max(len(line) for line in lines) + 2
        out = ["┌" + "─" * width + "┐"]
        out += [f"│ {line:<{width - 2}} │" for line in lines]
        out.append("└" + "─" * width + "┘")
        self.stdout.write("\n".join(out))
