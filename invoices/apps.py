from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _after_migrate(sender, **kwargs) -> None:
    # After this app's permissions exist (Django creates them in an earlier post_migrate receiver).
    from invoices.roles import sync_roles
    from invoices.schedules import register_schedules

    register_schedules()
    sync_roles()


class InvoicesConfig(AppConfig):
    name = "invoices"
    verbose_name = "Customer invoices"

    def ready(self) -> None:
        post_migrate.connect(_after_migrate, sender=self)
