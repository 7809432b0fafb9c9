"""The page of the live-data tests and a paginated variant of the test app's tasks."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from rest_framework.pagination import PageNumberPagination

from tests.testapp.views import TaskViewSet


class TwoPerPage(PageNumberPagination):
    page_size = 2


class PagedTaskViewSet(TaskViewSet):
    """The same tasks, two per page: the list answers ``{count, next, previous, results}``."""

    live_resource = "paged-tasks"
    pagination_class = TwoPerPage


@login_required
@ensure_csrf_cookie
def live(request: HttpRequest) -> HttpResponse:
    """An empty page with the client: the tests open live lists on it with ``startList()``."""
    return render(request, "livedata/live.html")
