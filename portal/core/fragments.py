"""Rendered parts of pages kept in the cache under the versions of the data they show.

A fragment is stored with the version token of each *scope* it reads (say, "the servers of
project 7" and "the catalog") as they were before its data was read. A write to a scope replaces
its token (`changed`), at once and again after the commit, so the next request finds the tokens
differ and renders afresh; nothing is ever patched in place.

Every write reaches `changed` without its caller's help: `ScopedQuerySet` covers the bulk writes
(update, bulk_create; bulk_update goes through update), which send no signals, and `track()`
covers save() and delete().

What can still be stale, and for how long: a page built in the instant between a commit and its
on-commit callback is retired by that callback; if the process dies in that instant, or the cache
cannot be written when a token is retired, the entry expires after `FRAGMENT_SECONDS`. The cache
being down costs speed, never an answer: every failure falls back to rendering.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence

from django.conf import settings
from django.core.cache import cache
from django.db import models, transaction
from django.db.models.signals import post_delete, post_save
from django.template.loader import get_template

log = logging.getLogger(__name__)

# A fragment is at most this old when a write's on-commit callback never ran (a killed process).
FRAGMENT_SECONDS = 60
# Version tokens outlive the fragments they name; one that is evicted early only costs a miss.
VERSION_SECONDS = 24 * 3600

CATALOG = "catalog"


def servers_of(project_id: int) -> str:
    """The scope of a project's servers, as the server list shows them."""
    return f"servers:{project_id}"


def _version_keys(scopes: Iterable[str]) -> dict[str, str]:
    return {scope: f"fragment-version:{scope}" for scope in scopes}


def cached[T](name: str, scopes: Sequence[str], parts: Sequence, build: Callable[[], T]) -> T:
    """`build()`'s value, kept under the current versions of `scopes` and the values of `parts`
    (everything else the value depends on: the query string, a permission, the time zone).

    One cache read: the versions and the entry (stored with the versions it was built under) come
    together, before `build` reads its data. If the cache fails, `build()` is simply returned; a
    fragment is a copy, never the record. With DEBUG on nothing is kept: templates change under a
    running development server."""
    if settings.DEBUG:
        return build()
    versions = list(_version_keys(scopes).values())
    digest = hashlib.blake2b(repr((_release(), list(parts))).encode(), digest_size=16).hexdigest()
    key = f"fragment:{name}:{digest}"
    try:
        found = cache.get_many([*versions, key])
        missing = [version for version in versions if version not in found]
        for version in missing:
            # add(): of two requests starting a scope at once, both use the first one's token.
            cache.add(version, uuid.uuid4().hex, VERSION_SECONDS)
        if missing:
            found |= cache.get_many(missing)
        tokens = [found[version] for version in versions]  # KeyError if evicted meanwhile: render
    except Exception:  # a cache outage must not fail the page: render it as if nothing were kept
        log.warning("fragments: cache unavailable, rendering %s", name, exc_info=True)
        return build()
    entry = found.get(key)
    if entry is not None and entry[0] == tokens:
        return entry[1]
    value = build()
    try:
        cache.set(key, (tokens, value), FRAGMENT_SECONDS)
    except Exception:  # as above: the page is answered either way
        log.warning("fragments: could not keep %s", name, exc_info=True)
    return value


@functools.cache
def _release() -> str:
    """This code's digest: a deploy whose templates or code render differently starts afresh
    (processes sharing one cache may run different releases while it rolls out)."""
    digest = hashlib.blake2b(digest_size=16)
    for root in (settings.BASE_DIR / "portal", settings.BASE_DIR / "templates"):
        for path in sorted(root.rglob("*")):
            if path.suffix in {".py", ".html", ".txt"} and path.is_file():
                digest.update(str(path.relative_to(settings.BASE_DIR)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def changed(*scopes: str) -> None:
    """Retire the versions of `scopes` now, and again once the current transaction commits.

    Now: this transaction's own later reads (and a test's, whose transaction never commits) must
    not get the page as it was. Again after the commit: another request may have built the page
    from the rows as they were before the commit, under the token retired the first time."""
    scopes = tuple(dict.fromkeys(s for s in scopes if s))
    if not scopes:
        return
    _retire(scopes)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _retire(scopes), robust=True)


def _retire(scopes: Sequence[str]) -> None:
    try:
        cache.set_many({key: uuid.uuid4().hex for key in _version_keys(scopes).values()}, VERSION_SECONDS)
    except Exception:  # the write it follows has happened: it must not fail for a copy's sake
        log.warning("fragments: could not retire %s", ", ".join(scopes), exc_info=True)


class ScopedQuerySet(models.QuerySet):
    """A QuerySet whose bulk writes, which send no signals, retire the scopes they touch
    (`bulk_update` goes through `update`); `track()` does the same for save() and delete().

    Subclasses say which scope a row belongs to (`scope_of`, `scopes_of_rows` for a filter, which
    may query) and which fields fragments show (`SHOWN_FIELDS`, None for all): a write of other
    fields only retires nothing."""

    SHOWN_FIELDS: frozenset[str] | None = None

    @staticmethod
    def scope_of(obj: models.Model) -> str:
        raise NotImplementedError

    def scopes_of_rows(self) -> set[str]:
        raise NotImplementedError

    def scopes_of_values(self, values: dict) -> set[str]:
        """The scopes rows join when an update writes `values` (moving them elsewhere)."""
        return set()

    @classmethod
    def shows(cls, fields: Iterable[str] | None) -> bool:
        return fields is None or cls.SHOWN_FIELDS is None or not cls.SHOWN_FIELDS.isdisjoint(fields)

    def update(self, **kwargs) -> int:
        if not self.shows(kwargs):
            return super().update(**kwargs)
        # Before: the update may move rows out of this filter. (A row that joins the filter between
        # this read and the update is missed: callers filter by primary key.)
        scopes = self.scopes_of_rows() | self.scopes_of_values(kwargs)
        count = super().update(**kwargs)
        if count:
            changed(*scopes)
        return count

    def bulk_create(self, objs, *args, **kwargs):
        created = super().bulk_create(objs, *args, **kwargs)
        changed(*(self.scope_of(obj) for obj in created))
        return created


def track(model: type[models.Model]) -> None:
    """Retire a model's scopes when one of its rows is saved or deleted (its default manager's
    queryset, a `ScopedQuerySet`, covers the bulk writes)."""
    queryset = model._default_manager.get_queryset()
    if not isinstance(queryset, ScopedQuerySet):
        raise TypeError(f"{model.__name__}'s default manager must make a ScopedQuerySet")

    def saved(sender, instance, update_fields=None, **kwargs) -> None:
        if queryset.shows(update_fields):
            changed(queryset.scope_of(instance))

    def deleted(sender, instance, **kwargs) -> None:
        changed(queryset.scope_of(instance))

    uid = f"fragments:{model._meta.label}"
    post_save.connect(saved, sender=model, weak=False, dispatch_uid=uid)
    post_delete.connect(deleted, sender=model, weak=False, dispatch_uid=uid)


# --- Includes kept by their values --------------------------------------------------------------
# Keyed by the values themselves, so nothing can go stale: used where the values are read on every
# request anyway (the page frame's switchers and sidebar) and only the rendering is worth saving.
KEPT_INCLUDES = 512
_PLAIN = (str, int, float, bool, type(None))
_kept: dict[tuple, str] = {}
_kept_lock = threading.Lock()


def _check_plain(value: object, name: str) -> None:
    if isinstance(value, tuple):  # NamedTuples included
        for item in value:
            _check_plain(item, name)
    elif not isinstance(value, _PLAIN):
        raise TypeError(
            f"include_kept: {name} holds a {type(value).__name__}; pass plain values (str, numbers, "
            "None, tuples of them) so that they are the whole key"
        )


def render_kept(template_name: str, values: dict) -> str:
    """`template_name` rendered with `values` only, from this process's store when equal values
    were rendered before (compared with ==, as dictionary keys are: don't pass True in one call
    and 1 in another for the same value)."""
    if settings.DEBUG:
        for name, value in values.items():
            _check_plain(value, name)
        return get_template(template_name).render(values)
    key = (template_name, tuple(values.items()))
    html = _kept.get(key)
    if html is None:
        # Checked when first seen: a stored key equals only plain values (a model instance is
        # never equal to a tuple or a string).
        for name, value in values.items():
            _check_plain(value, name)
        html = get_template(template_name).render(values)
        with _kept_lock:
            if len(_kept) >= KEPT_INCLUDES:
                _kept.pop(next(iter(_kept)))  # the oldest: dicts keep insertion order
            _kept[key] = html
    return html
