from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

ACCOUNTS = [("alice", "alice-demo-pass"), ("bob", "bob-demo-pass")]


class Command(BaseCommand):
    help = "Create (or reset) the demo accounts and print their logins."

    def handle(self, *args, **options):
        users = get_user_model()
        for username, password in ACCOUNTS:
            user, _ = users.objects.get_or_create(username=username)
            user.set_password(password)
            user.save()
        self.stdout.write("Demo accounts (log in at http://127.0.0.1:8000/login/):")
        for username, password in ACCOUNTS:
            self.stdout.write(f"  {username} / {password}")
