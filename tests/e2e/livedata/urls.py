from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from rest_framework.routers import DefaultRouter

from tests.testapp.views import ProjectTaskViewSet, TaskViewSet

from .views import PagedTaskViewSet, live

router = DefaultRouter()
router.register("tasks", TaskViewSet, basename="task")
router.register("paged-tasks", PagedTaskViewSet, basename="paged-task")
nested = DefaultRouter()
nested.register("tasks", ProjectTaskViewSet, basename="project-task")

urlpatterns = [
    path("live/", live, name="live"),
    path("login/", auth_views.LoginView.as_view(template_name="livedata/login.html"), name="login"),
    path("admin/", admin.site.urls),
    path("api/", include(router.urls)),
    path("api/projects/<int:project_pk>/", include(nested.urls)),
]
