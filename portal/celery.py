import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def load_url_configuration(**kwargs) -> None:
    """Import the URL configuration once in the worker's main process, before it forks its pool.

    Tasks build links (e-mails, audit records); otherwise each pool process would import every
    view module on its first link, in the middle of someone's task."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (the import is the point)
