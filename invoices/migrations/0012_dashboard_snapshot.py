from django.db import migrations, models


class Migration(migrations.Migration):
    """Every dashboard figure in one snapshot row; the monthly totals it replaces were a snapshot
    too (recomputed from the invoices), so nothing is lost with their table."""

    dependencies = [
        ("invoices", "0011_month_totals"),
    ]

    operations = [
        migrations.CreateModel(
            name="DashboardSnapshot",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("computed_at", models.DateTimeField()),
                ("figures", models.JSONField()),
            ],
        ),
        migrations.DeleteModel(
            name="MonthTotal",
        ),
    ]
