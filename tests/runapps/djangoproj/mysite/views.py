"""Views of the Django project; the suspect code is in ``mysite.pricing``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped]

from mysite.pricing import discount, lookup


def item(request: HttpRequest, item_id: int) -> HttpResponse:
    return HttpResponse(str(discount(lookup(item_id))))
