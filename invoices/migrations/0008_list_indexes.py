"""Indexes for the invoice list at a million rows: its order, the overdue and removed filters, the
search by number prefix and by customer name (trigrams, PostgreSQL only)."""

import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.contrib.postgres.operations import TrigramExtension
from django.conf import settings
from django.db import migrations, models


class AddIndexOnPostgres(migrations.AddIndex):
    """An index only PostgreSQL can build (an operator class, GIN): recorded in the migration state
    everywhere, built on PostgreSQL only, so SQLite still migrates."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class KeptTrigramExtension(TrigramExtension):
    """pg_trgm for the name searches' indexes. Undoing the migration keeps the extension: other
    schemas may use it, and only its owner may drop it."""

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass


class Migration(migrations.Migration):
    dependencies = [
        ("invoices", "0007_bulk_progress"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        KeptTrigramExtension(),  # does nothing on SQLite
        migrations.RemoveIndex(model_name="invoice", name="invoice_number"),
        AddIndexOnPostgres(
            model_name="invoice",
            index=models.Index(
                fields=["number"], name="invoice_number_prefix", opclasses=["varchar_pattern_ops"]
            ),
        ),
        AddIndexOnPostgres(
            model_name="customer",
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.indexes.OpClass(
                    django.db.models.functions.text.Upper("name"), name="gin_trgm_ops"
                ),
                name="customer_name_trgm",
            ),
        ),
        AddIndexOnPostgres(
            model_name="invoice",
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.indexes.OpClass(
                    django.db.models.functions.text.Upper("customer_name"), name="gin_trgm_ops"
                ),
                name="invoice_customer_trgm",
            ),
        ),
        migrations.AddIndex(
            model_name="invoice",
            index=models.Index(fields=["issue_date", "id"], name="invoice_list_order"),
        ),
        migrations.AddIndex(
            model_name="invoice",
            index=models.Index(
                condition=models.Q(("removed_at__isnull", True), ("status", "open")),
                fields=["issue_date", "id"],
                name="invoice_open_order",
            ),
        ),
        migrations.AddIndex(
            model_name="invoice",
            index=models.Index(
                condition=models.Q(("removed_at__isnull", False)),
                fields=["issue_date", "id"],
                name="invoice_removed_order",
            ),
        ),
        migrations.AddIndex(
            model_name="invoice", index=models.Index(fields=["due_date"], name="invoice_due")
        ),
        migrations.AddIndex(
            model_name="invoice", index=models.Index(fields=["paid_at"], name="invoice_paid")
        ),
    ]
