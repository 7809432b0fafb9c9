"""Viewsets of the tests' live resources: private notes per owner, plus shared ones."""

from django.db.models import Q
from rest_framework import permissions, serializers, viewsets

from floorchannels.rest import LiveResourceMixin

from .models import Note


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
