from django.db import migrations, models


def drop_unanswered_records(apps, schema_editor):
    # A record used to be claimed empty and answered later in the same transaction, so none
    # without an answer can have committed; any such row would be meaningless to replay.
    apps.get_model("ops_center", "IdempotencyRecord").objects.filter(status_code__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("ops_center", "0002_pendingeviction"),
    ]

    operations = [
        migrations.RunPython(drop_unanswered_records, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="status_code",
            field=models.PositiveSmallIntegerField(),
        ),
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="response_body",
            field=models.TextField(),
        ),
    ]
