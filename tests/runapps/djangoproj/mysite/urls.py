from __future__ import annotations

from django.urls import path  # type: ignore[import-untyped]

from mysite.views import item

urlpatterns = [path("items/<int:item_id>/", item)]
