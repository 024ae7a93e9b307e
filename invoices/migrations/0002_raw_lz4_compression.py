"""On PostgreSQL, compress the providers' raw payloads with lz4 instead of pglz.

A Qonto invoice's payload is over 2 kB, so every row a sync writes is compressed: lz4 does it
several times faster, which a full sync of a large account feels. Other databases are unchanged.
"""

from django.db import migrations

TABLES = ("invoices_invoice", "invoices_customer")


def set_compression(method):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in TABLES:
            schema_editor.execute(
                f"ALTER TABLE {schema_editor.quote_name(table)} ALTER COLUMN raw SET COMPRESSION {method}"
            )

    return run


class Migration(migrations.Migration):
    dependencies = [("invoices", "0001_initial")]

    operations = [migrations.RunPython(set_compression("lz4"), set_compression("pglz"))]
