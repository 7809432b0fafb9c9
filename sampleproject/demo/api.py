"""The Notes API: a plain DRF viewset plus LiveResourceMixin, and nothing else to go live."""

from django.db.models import Q
from rest_framework import permissions, serializers, viewsets

from floorchannels.rest import LiveResourceMixin

from .models import Note


class NoteSerializer(serializers.ModelSerializer):
    owner = serializers.HiddenField(default=serializers.CurrentUserDefault())
    author = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = Note
        fields = ["id", "owner", "author", "text", "shared", "created"]


class IsOwnerOrReadOnly(permissions.BasePermission):
    def has_object_permission(self, request, view, obj):
        return request.method in permissions.SAFE_METHODS or obj.owner_id == request.user.pk


class NoteViewSet(LiveResourceMixin, viewsets.ModelViewSet):
    live_resource = "notes"
    serializer_class = NoteSerializer
    permission_classes = [permissions.IsAuthenticated, IsOwnerOrReadOnly]

    def get_queryset(self):
        return Note.objects.filter(Q(owner=self.request.user) | Q(shared=True))

    # Partitions narrow who is asked about an event: a private note concerns its owner only.
    def get_live_partitions(self, obj):
        return [("owner", obj.owner_id)] + (["shared"] if obj.shared else [])

    def get_live_subscription_partitions(self):
        return [("owner", self.request.user.pk), "shared"]
