"""Viewsets of the tests' live resources: private notes per owner, plus shared ones."""

from django.db.models import Q
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import permissions, serializers, viewsets
from rest_framework_guardian.filters import ObjectPermissionsFilter

from floorchannels.rest import LiveResourceMixin

from .models import Document, Note, Project, Task


class NoteSerializer(serializers.ModelSerializer):
    owner = serializers.HiddenField(default=serializers.CurrentUserDefault())
    owner_name = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = Note
        fields = ["id", "owner", "owner_name", "text", "shared"]


class CanUseNotes(permissions.BasePermission):
    """Signed in and holding testapp.view_note — revocable, for the tests."""

    def has_permission(self, request, view):
        return bool(request.user.is_authenticated and request.user.has_perm("testapp.view_note"))


class IsOwnerOrReadOnly(permissions.BasePermission):
    def has_object_permission(self, request, view, obj):
        return request.method in permissions.SAFE_METHODS or obj.owner_id == request.user.pk


class NoteViewSet(LiveResourceMixin, viewsets.ModelViewSet):
    live_resource = "notes"
    serializer_class = NoteSerializer
    permission_classes = [CanUseNotes, IsOwnerOrReadOnly]

    def get_queryset(self):
        user = self.request.user
        return Note.objects.filter(Q(owner=user) | Q(shared=True)).order_by("id")

    def get_live_partitions(self, obj):
        return [("owner", obj.owner_id)] + (["shared"] if obj.shared else [])

    def get_live_subscription_partitions(self):
        return [("owner", self.request.user.pk), "shared"]


class NoteIdViewSet(NoteViewSet):
    """The same notes, published id-only."""

    live_resource = "note-ids"
    live_payload = "id"


class StaffNoteViewSet(LiveResourceMixin, viewsets.ReadOnlyModelViewSet):
    live_resource = "staff-notes"
    serializer_class = NoteSerializer
    permission_classes = [permissions.IsAdminUser]
    queryset = Note.objects.all()


class TaskSerializer(serializers.HyperlinkedModelSerializer):
    """Hyperlinked: live data must carry the scheme, host and port a GET would."""

    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.all())
    assignees = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    #: Per-recipient data: whether the requesting user is assigned.
    mine = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = ["url", "id", "project", "title", "done", "assignees", "mine"]
        extra_kwargs = {"url": {"view_name": "task-detail"}}

    def get_mine(self, task) -> bool:
        user = self.context["request"].user
        return any(assignee.pk == user.pk for assignee in task.assignees.all())


class TaskViewSet(LiveResourceMixin, viewsets.ModelViewSet):
    """Tasks of the user's projects, filtered with django-filter (?project=, ?done=)."""

    live_resource = "tasks"
    queryset = Task.objects.all()
    serializer_class = TaskSerializer
    permission_classes = [permissions.IsAuthenticated]
    filter_backends = [DjangoFilterBackend]
    filterset_fields = ["project", "done"]

    def get_queryset(self):
        tasks = Task.objects.filter(project__members=self.request.user).distinct()
        return tasks.prefetch_related("assignees").order_by("id")

    def get_live_partitions(self, obj):
        return [("project", obj.project_id)]

    def get_live_subscription_partitions(self):
        project = self.request.query_params.get("project")
        if project is not None:
            return [("project", project)]
        return [("project", pk) for pk in self.request.user.projects.values_list("pk", flat=True)]


class ProjectTaskViewSet(TaskViewSet):
    """The same tasks under /projects/<project_pk>/tasks/: a nested route."""

    live_resource = "project-tasks"
    filter_backends = []

    def get_queryset(self):
        return super().get_queryset().filter(project_id=self.kwargs["project_pk"])

    def get_live_subscription_partitions(self):
        return [("project", self.kwargs["project_pk"])]


class DocumentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Document
        fields = ["id", "title"]


class DocumentViewSet(LiveResourceMixin, viewsets.ModelViewSet):
    """Visibility enforced only by a filter backend (django-guardian's object permissions)."""

    live_resource = "documents"
    queryset = Document.objects.all()
    serializer_class = DocumentSerializer
    permission_classes = [permissions.IsAuthenticated]
    filter_backends = [ObjectPermissionsFilter]
