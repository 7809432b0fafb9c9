"""The key view, and what a token client's API offers around it: log in for a DRF token or
a JWT, log out (deleting the token), and an action that pushes to the user's windows."""

from datetime import timedelta

from django.contrib.auth import authenticate, login
from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework_simplejwt.tokens import AccessToken

from floorchannels import USER, call


@api_view(["POST"])
@permission_classes([AllowAny])
def short_jwt(request):
    """A JWT that expires in ``seconds``, as a short-lived access token would."""
    user = authenticate(username=request.data["username"], password=request.data["password"])
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=float(request.data.get("seconds", 300))))
    return Response({"access": str(token), "exp": token["exp"]})


@api_view(["POST"])
@permission_classes([IsAuthenticated])
def logout(request):
    request.auth.delete()
    return Response(status=204)


@api_view(["POST"])
@permission_classes([IsAuthenticated])
def push(request):
    call("t.pushed", USER(request.user), kwargs={"to": request.user.username})
    return Response(status=204)


@csrf_exempt
def session_login(request):
    user = authenticate(username=request.POST["username"], password=request.POST["password"])
    login(request, user)
    return JsonResponse({})


urlpatterns = [
    path("floorchannels/", include("floorchannels.urls")),
    path("api/token/", obtain_auth_token),
    path("api/jwt/", short_jwt),
    path("api/logout/", logout),
    path("api/push/", push),
    path("login/", session_login),
]
