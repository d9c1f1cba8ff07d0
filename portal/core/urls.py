"""Links for many rows at the price of one `reverse()`."""

from __future__ import annotations

from collections.abc import Callable

from django.urls import reverse


def url_maker(name: str, kwarg: str, stand_in: object, **kwargs) -> Callable[[str], str]:
    """`reverse(name)` for any number of values of `kwarg`: reversed once around `stand_in` (a
    value the URL's converter accepts), which each value, printed as reverse() prints it, then
    replaces. If another part of the URL reads the same as the stand-in, every call reverses."""
    url = reverse(name, kwargs={**kwargs, kwarg: stand_in})
    if url.count(str(stand_in)) != 1:
        return lambda value: reverse(name, kwargs={**kwargs, kwarg: value})
    prefix, _, suffix = url.partition(str(stand_in))
    return lambda value: f"{prefix}{value}{suffix}"
