"""The rendered page and a sign-in for it: the session path of the key view."""

from django.contrib.auth import authenticate, login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie


@csrf_exempt
def session_login(request: HttpRequest) -> HttpResponse:
    user = authenticate(username=request.POST["username"], password=request.POST["password"])
    if user is None:
        return JsonResponse({"detail": "wrong credentials"}, status=403)
    login(request, user)
    return JsonResponse({})


@login_required(login_url="/login/")
@ensure_csrf_cookie  # as any page with a form has: the key view checks CSRF for sessions
def page(request: HttpRequest) -> HttpResponse:
    return render(request, "page.html")
