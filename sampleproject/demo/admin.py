from django.contrib import admin

from .models import Note


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    """Edit a note here and watch it change in the notes page's live list."""

    list_display = ["text", "owner", "shared", "created"]
    list_filter = ["shared"]
