from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from rest_framework.routers import DefaultRouter

from sampleproject.demo import api, views

router = DefaultRouter()
router.register("notes", api.NoteViewSet, basename="note")

urlpatterns = [
    path("", views.index, name="index"),
    path("notes/", views.notes, name="notes"),
    path("api/", include(router.urls)),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="demo/login.html", extra_context={"page": "login"}),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
