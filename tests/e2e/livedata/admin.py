"""Tasks and projects in the admin: an edit there is a plain ``save()``, which the observers
of the test app's viewsets publish."""

from django.contrib import admin

from tests.testapp.models import Project, Task

admin.site.register(Project)
admin.site.register(Task)
