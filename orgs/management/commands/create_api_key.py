from django.core.management.base import BaseCommand, CommandError

from orgs.models import User
from orgs.services import api_key_create


class Command(BaseCommand):
    help = (
        "Issue an API key for an existing user and print it. The key is shown only this once: the database keeps "
        'its hash. Use it as "Authorization: Bearer <key>".'
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="The user the key acts as.")
        parser.add_argument("--name", default="", help="A label for the key, shown in the admin.")

    def handle(self, *args, **options):
        username = options["username"]
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(
                f"No user named {username!r}. Create one with `manage.py createsuperuser`, "
                "or load the demo users with `manage.py seed_demo`."
            )
        api_key, raw_key = api_key_create(user=user, name=options["name"])
        # Only the key goes to stdout, so scripts can capture it: KEY=$(manage.py create_api_key alice)
        self.stdout.write(raw_key)
        self.stderr.write(f"Created key {api_key} for {username}; it is not shown again.")
