"""Names people type can be long (80 characters for projects, organizations, keys and firewalls;
63 for servers): e-mail subjects shorten them with an ellipsis, and pages wrap them."""

from __future__ import annotations

from django.core import mail

from portal.compute.models import Operation
from portal.core.mail import SUBJECT_MAX_LENGTH, mail_after_commit
from tests.steps import drive


def test_a_launch_subject_shortens_a_long_project_name(
    launch, project, django_capture_on_commit_callbacks, mailoutbox
):
    project.name = "Research and development of the very long named initiative for " + "x" * 16
    project.save()
    batch = launch(name="a" * 61, count=1)
    with django_capture_on_commit_callbacks(execute=True):
        drive(Operation.objects.get(instance__batch=batch))
    subject = mailoutbox[0].subject
    assert subject.startswith("a" * 61 + " is ready in Research and development of")
    assert subject.endswith("…") and len(subject) <= SUBJECT_MAX_LENGTH
    assert "x" * 16 not in subject


def test_every_subject_is_cut_with_an_ellipsis(db, django_capture_on_commit_callbacks, settings):
    settings.SITE_NAME = "Nimbus"
    with django_capture_on_commit_callbacks(execute=True):
        mail_after_commit(
            template="compute/email/terminated",
            to=["a@example.com"],
            context={"instance": type("I", (), {"name": "n" * 300})()},
        )
    subject = mail.outbox[0].subject
    assert len(subject) == SUBJECT_MAX_LENGTH and subject.endswith("…")
