"""Helpers shared by the apps' admin tests."""

from django.urls import reverse


def admin_url(model, view: str, *args) -> str:
    """The admin URL of ``model``'s ``view`` ("changelist", "change", ...), with ``args`` (a pk)."""
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)
