from __future__ import annotations

from django.urls import path

from mysite.views import item

urlpatterns = [path("items/<int:item_id>/", item)]
