import json
import re

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Template
from django.test import RequestFactory

from floorchannels import window_key
from floorchannels.windows import load_key


def render(source, request, **context):
    return Template("{% load floorchannels %}" + source).render(Context({"request": request, **context}))


def config_of(html):
    match = re.search(r'<script id="floorchannels-config" type="application/json">(.*?)</script>', html)
    return json.loads(match.group(1))


@pytest.fixture
def request_():
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    return request


def test_script_tag_renders_key_url_and_bundle(request_):
    html = render("{% floorchannels_script topics %}", request_, topics=["chat", ("room", 2)])
    config = config_of(html)
    assert config["url"] == "/ws/floorchannels/"
    window = load_key(config["window_key"])
    assert window.topics == ('"chat"', '["room",2]')
    assert '<script src="/static/floorchannels/floorchannels.js" defer></script>' in html


def test_each_render_is_a_new_window(request_):
    first = config_of(render("{% floorchannels_script %}", request_))
    other = RequestFactory().get("/")
    other.user = AnonymousUser()
    second = config_of(render("{% floorchannels_script %}", other))
    assert load_key(first["window_key"]).window_id != load_key(second["window_key"]).window_id


def test_tag_reuses_the_window_the_view_issued(request_):
    key = window_key(request_, topics=["granted"])
    assert config_of(render("{% floorchannels_config %}", request_))["window_key"] == key


def test_key_cannot_break_out_of_the_script_element(request_):
    html = render(
        "{% floorchannels_script topics %}", request_, topics=["</script><script>alert(1)</script>"]
    )
    assert "</script><script>alert" not in html


@pytest.mark.urls("tests.test_key_view")
def test_with_the_key_view_included_the_page_can_renew_its_key(request_):
    """key_url and the CSRF token the key view checks for session-authenticated requests."""
    config = config_of(render("{% floorchannels_script %}", request_))
    assert config["key_url"] == "/floorchannels/key/"
    assert isinstance(config["csrf_token"], str) and len(config["csrf_token"]) >= 32


def test_without_the_key_view_no_key_url_and_no_token(request_):
    config = config_of(render("{% floorchannels_script %}", request_))
    assert "key_url" not in config and "csrf_token" not in config
