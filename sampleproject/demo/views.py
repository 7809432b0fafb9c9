from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie


def index(request):
    """The demo page. Every render is a new window with its own key."""
    return render(request, "demo/index.html", {"topics": ["chat"], "presence": ["chat"]})


@login_required
@ensure_csrf_cookie
def notes(request):
    """The live Notes list: the page subscribes to the 'notes' resource."""
    return render(request, "demo/notes.html")
