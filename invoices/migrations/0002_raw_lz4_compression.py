"""On PostgreSQL, compress the providers' raw payloads with lz4 instead of pglz.

A Qonto invoice's payload is over 2 kB, so every row a sync writes is compressed: lz4 does it
several times faster, which a full sync of a large account feels. Other databases, and a
PostgreSQL built without lz4, keep their default.
"""

from django.db import DatabaseError, migrations, transaction

TABLES = ("invoices_invoice", "invoices_customer")


def set_compression(method):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in TABLES:
            try:
                with transaction.atomic(using=schema_editor.connection.alias):
                    schema_editor.execute(
                        f"ALTER TABLE {schema_editor.quote_name(table)} ALTER COLUMN raw SET COMPRESSION {method}"
                    )
            except DatabaseError:  # "compression method lz4 not supported": pglz stays
                return

    return run


class Migration(migrations.Migration):
    dependencies = [("invoices", "0001_initial")]

    operations = [migrations.RunPython(set_compression("lz4"), set_compression("pglz"))]
