from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from billing.demo.keys_csv import DemoKey, KeysFileError, read_keys_csv

# The roles seed_demo writes, in the order the load-test personas are described.
ROLES = ("user", "org_admin", "org_member", "staff")


class Command(BaseCommand):
    help = (
        "Print how to try the demo: the admin login (admin/admin) and, from the key file seed_demo --keys-out "
        "wrote, one API key per role with a ready-to-paste curl command."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--keys", type=Path, default=Path("var/demo-keys.csv"), help="The CSV written by seed_demo --keys-out."
        )
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="Where the app is served.")

    def handle(self, *args, **options):
        base_url, keys_path = options["base_url"].rstrip("/"), options["keys"]
        self.stdout.write(self.style.MIGRATE_HEADING("Ops-Center demo"))
        self.stdout.write(f"  Admin:    {base_url}/admin/  (username admin, password admin)")
        self.stdout.write(f"  API docs: {base_url}/api/v1/docs/")
        if not keys_path.exists():
            self.stdout.write(
                f"No API key file at {keys_path}. Load demo keys with "
                f"`manage.py seed_demo --reset --keys-out {keys_path}`, or issue one for any user with "
                "`manage.py create_api_key USERNAME`."
            )
            return
        self.stdout.write(f"  API keys, one per role (all in {keys_path}):")
        for key in self._first_key_per_role(keys_path):
            org = f" in org {key.org_id}" if key.org_id else ""
            self.stdout.write(f"    {key.role:<11} {key.username}{org}")
            self.stdout.write(f'      curl -H "Authorization: Bearer {key.api_key}" {base_url}/api/v1/credits/balance')

    def _first_key_per_role(self, path: Path) -> list[DemoKey]:
        try:
            keys = read_keys_csv(path)
        except KeysFileError as exc:
            raise CommandError(str(exc)) from exc
        first: dict[str, DemoKey] = {}
        for key in keys:
            first.setdefault(key.role, key)
        return [first[role] for role in ROLES if role in first]
