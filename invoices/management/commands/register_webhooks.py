"""Register the webhooks at a provider: ``register_webhooks --provider mkp [--url https://.../webhooks/mkp/]``."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from invoices.webhooks.registration import webhooks_register_mkp


class Command(BaseCommand):
    help = (
        "Register the webhook records at MijnKlantportaal (the six invoice and customer event types), "
        "creating only those missing, and keep each record's secret. Without --url, WEBHOOK_BASE_URL "
        "followed by /webhooks/mkp/ is used."
    )

    def add_arguments(self, parser):
        parser.add_argument("--provider", choices=["mkp"], default="mkp")
        parser.add_argument("--url", default="", help="The public address MijnKlantportaal calls.")

    def handle(self, *args, provider: str, url: str, **options):
        try:
            result = webhooks_register_mkp(url=url)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(result.summary())
