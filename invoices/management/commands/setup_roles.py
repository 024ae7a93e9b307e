from django.core.management.base import BaseCommand

from invoices.roles import DESCRIPTIONS, sync_roles


class Command(BaseCommand):
    help = (
        "Create the staff roles (Finance viewer, Finance clerk, Back-office admin) and give them their "
        "permissions. Runs on every migrate; permissions added to a group by hand are kept unless --exact."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--exact", action="store_true", help="remove permissions the role does not list")

    def handle(self, *args, exact: bool = False, **options) -> None:
        for name, count in sync_roles(exact=exact).items():
            self.stdout.write(f"{name}: {count} permissions ({DESCRIPTIONS[name]})")
