from django.apps import AppConfig


class OpsCenterConfig(AppConfig):
    name = "ops_center"
    verbose_name = "Ops-Center"
