from django.core.management.base import BaseCommand

from invoices.schedules import register_schedules


class Command(BaseCommand):
    help = "Create the periodic tasks in django-celery-beat (idempotent; keeps staff's timing edits)."

    def handle(self, *args, **options) -> None:
        for name in register_schedules():
            self.stdout.write(f"registered: {name}")
