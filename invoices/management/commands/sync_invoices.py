from django.core.management.base import BaseCommand, CommandError

from invoices.models import Provider, SyncRun
from invoices.providers import is_configured
from invoices.sync import MODE_QUICK, MODES, sync_provider


class Command(BaseCommand):
    help = "Pull customers and invoices from the providers now, as the scheduled sync does, and print the counts."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--provider", choices=[*Provider.values, "all"], default="all")
        parser.add_argument("--mode", choices=MODES, default=MODE_QUICK)
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="hand the sync to the Celery workers instead of running it here",
        )

    def handle(self, *args, provider: str, mode: str, enqueue: bool, **options) -> None:
        providers = Provider.values if provider == "all" else [provider]
        failed = False
        for name in providers:
            if not is_configured(name):
                message = f"{Provider(name).label}: no credentials configured; skipped."
                if provider != "all":
                    raise CommandError(message)
                self.stdout.write(message)
                continue
            if enqueue:
                from invoices.tasks import sync_provider as sync_task

                sync_task.delay(name, mode)
                self.stdout.write(f"{Provider(name).label} {mode}: queued for the workers.")
                continue
            run = sync_provider(provider=name, mode=mode)
            self.stdout.write(
                f"{Provider(name).label} {mode}: {run.get_status_display().lower()} — "
                f"{run.created} created, {run.updated} updated, {run.unchanged} unchanged, "
                f"{run.removed} removed, {run.pages} pages, {run.requests} requests"
            )
            if run.progress:
                self.stdout.write(f"  progress: {run.progress}")
            if run.status == SyncRun.Status.FAILED:
                self.stderr.write(f"  error: {run.error}\n  The next run resumes where this one stopped.")
                failed = True
        if failed:
            raise CommandError("At least one sync failed.")
