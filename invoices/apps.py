from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _register_schedules(sender, **kwargs) -> None:
    from invoices.schedules import register_schedules

    register_schedules()


class InvoicesConfig(AppConfig):
    name = "invoices"
    verbose_name = "Customer invoices"

    def ready(self) -> None:
        post_migrate.connect(_register_schedules, sender=self)
