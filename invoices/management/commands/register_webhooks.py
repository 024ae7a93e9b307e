"""Register the webhooks at the providers: ``register_webhooks --provider mkp|qonto|all [--url ...]``."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from invoices.models import Provider
from invoices.webhooks.registration import webhooks_register


class Command(BaseCommand):
    help = (
        "Register our webhooks at MijnKlantportaal (a record for each of the six invoice and customer "
        "event types) and/or Qonto (one subscription for v1/client-invoices and v1/clients; the account "
        "must be connected first with Connect Qonto in the admin), creating only what is missing, and "
        "keep each secret. Without --url, WEBHOOK_BASE_URL followed by /webhooks/<provider>/ is used."
    )

    def add_arguments(self, parser):
        parser.add_argument("--provider", choices=["mkp", "qonto", "all"], default="mkp")
        parser.add_argument(
            "--url", default="", help="The public address the provider calls (one provider only)."
        )

    def handle(self, *args, provider: str, url: str, **options):
        providers = list(Provider) if provider == "all" else [Provider(provider)]
        if url and len(providers) > 1:
            raise CommandError("--url names one provider's address: use it with --provider mkp or qonto.")
        failures = []
        for each in providers:
            try:
                result = webhooks_register(provider=each, url=url)
            except ValidationError as exc:
                failures.append(f"{each.label}: {' '.join(exc.messages)}")
                continue
            self.stdout.write(result.summary())
        if failures:
            raise CommandError("\n".join(failures))
