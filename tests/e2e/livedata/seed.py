"""Create the live-data project's database and its accounts, projects and tasks.

Run as ``python -m tests.e2e.livedata.seed`` with ``LIVEDATA_DB`` set; prints the ids the
tests need as one JSON line. Each test works in projects of its own, so they share one
server without seeing each other's changes.
"""

import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.livedata.settings")


def seed() -> dict:
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from tests.testapp.models import Project, Task

    call_command("migrate", verbosity=0)
    User.objects.create_superuser("boss", password="boss-pass")
    ann = User.objects.create_user("ann", password="ann-pass")
    User.objects.create_user("cid", password="cid-pass")  # a member of nothing
    projects = {}
    for name in ("admin", "alpha", "beta", "paged", "echo"):
        project = Project.objects.create(name=name)
        project.members.add(ann)
        projects[name] = project.pk
    tasks = {
        "draft": Task.objects.create(project_id=projects["admin"], title="Draft").pk,
        "alpha": Task.objects.create(project_id=projects["alpha"], title="Alpha seed").pk,
    }
    for title in ("P1", "P2", "P3"):
        Task.objects.create(project_id=projects["paged"], title=title)
    return {"projects": projects, "tasks": tasks}


if __name__ == "__main__":
    django.setup()
    print(json.dumps(seed()), flush=True)
