"""The demo's two pages. Each render is a new window with its own key."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from . import excerpts


def index(request: HttpRequest) -> HttpResponse:
    """The signals page: its windows may hear the "chat" topic and are listed as present there."""
    context = {"page": "signals", "topics": ["chat"], "presence": ["chat"], "code": excerpts.index_excerpts()}
    return render(request, "demo/index.html", context)


@login_required
@ensure_csrf_cookie
def notes(request: HttpRequest) -> HttpResponse:
    """The live Notes list: the page subscribes to the "notes" resource."""
    return render(request, "demo/notes.html", {"page": "notes", "code": excerpts.notes_excerpts()})
