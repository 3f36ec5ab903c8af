from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "orgs"
    verbose_name = "Organizations and users"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from orgs import signals  # noqa: F401 - connects the receivers
