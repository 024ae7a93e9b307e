# Discarded uploads (kept for the record) and their corrections in the history.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("invoices", "0005_sync_that_keeps_going"),
    ]

    operations = [
        migrations.AlterField(
            model_name="invoice",
            name="sync_state",
            field=models.CharField(
                choices=[
                    ("local_draft", "Local draft"),
                    ("pending", "Waiting to be sent"),
                    ("sending", "Being sent"),
                    ("synced", "In sync"),
                    ("failed", "Failed"),
                    ("discarded", "Discarded"),
                ],
                default="synced",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="invoiceevent",
            name="kind",
            field=models.CharField(
                choices=[
                    ("created_locally", "Saved locally"),
                    ("create_requested", "Create requested"),
                    ("created_remotely", "Created at provider"),
                    ("payment_requested", "Payment requested"),
                    ("marked_paid", "Marked paid at provider"),
                    ("changed_by_sync", "Changed by sync"),
                    ("imported_by_sync", "Imported by sync"),
                    ("removed", "Removed at provider"),
                    ("push_failed", "Sending failed"),
                    ("push_retry", "Will retry"),
                    ("refreshed", "Refreshed"),
                    ("corrected", "Corrected"),
                    ("discarded", "Discarded"),
                ],
                max_length=32,
            ),
        ),
    ]
