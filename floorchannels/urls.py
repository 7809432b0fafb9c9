"""URLs of floorchannels' HTTP views: ``path("floorchannels/", include("floorchannels.urls"))``.

The key view is then ``POST /floorchannels/key/`` (named ``floorchannels:key``); the
``{% floorchannels_script %}`` tag puts its URL in the page's config, so a rendered page can
renew its key too.
"""

from django.urls import path

from .views import window_key_view

app_name = "floorchannels"

urlpatterns = [
    path("key/", window_key_view, name="key"),
]
