from django.shortcuts import render


def index(request):
    """The demo page. Every render is a new window with its own key."""
    return render(request, "demo/index.html", {"topics": ["chat"]})
