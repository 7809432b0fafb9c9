"""The live resource registry: a name never silently changes hands."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework import viewsets

from floorchannels.rest import LiveResourceMixin
from floorchannels.rest.resources import _resources, get_resource


@pytest.fixture(autouse=True)
def _registry():
    saved = dict(_resources)
    yield
    _resources.clear()
    _resources.update(saved)


def viewset(name, qualname, bases=(LiveResourceMixin, viewsets.GenericViewSet), module="app_a.views"):
    return type(qualname, bases, {"live_resource": name, "__module__": module, "__qualname__": qualname})


def test_two_unrelated_classes_of_the_same_name_are_an_error():
    first = viewset("projects", "ProjectViewSet", module="app_a.views")
    with pytest.raises(ImproperlyConfigured, match="app_a.views.ProjectViewSet.*app_b.views.ProjectViewSet"):
        viewset("projects", "ProjectViewSet", module="app_b.views")
    assert get_resource("projects") is first


def test_two_classes_claiming_one_resource_name_are_an_error():
    viewset("things", "ThingViewSet")
    with pytest.raises(ImproperlyConfigured, match="things"):
        viewset("things", "OtherViewSet")


def test_a_subclass_keeping_the_name_takes_it_over():
    base = viewset("reports", "ReportViewSet")
    child = type("StrictReportViewSet", (base,), {"__module__": "app_a.views"})
    assert get_resource("reports") is child
    # publish() with the parent later does not hand the name back.
    from floorchannels.rest.resources import register

    register(base)
    assert get_resource("reports") is child


def test_the_same_class_imported_again_replaces_itself():
    viewset("reloaded", "ReloadedViewSet")
    again = viewset("reloaded", "ReloadedViewSet")
    assert get_resource("reloaded") is again
