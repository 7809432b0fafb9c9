from types import SimpleNamespace

from floorchannels import everyone, is_authenticated, is_staff, server_side
from floorchannels.windows import WindowInfo


def window_of(**flags):
    user = SimpleNamespace(is_authenticated=True, is_active=True, is_staff=False, is_superuser=False)
    for name, value in flags.items():
        setattr(user, name, value)
    return WindowInfo(_user=user)


def test_builtins():
    assert everyone(window_of(), {}) and not server_side(window_of(), {})
    assert is_staff(window_of(is_staff=True), {}) and not is_staff(window_of(), {})
    assert not is_staff(window_of(is_staff=True, is_active=False), {})


def test_combinations():
    assert (is_authenticated & ~is_staff)(window_of(), {})
    assert not (is_authenticated & ~is_staff)(window_of(is_staff=True), {})
    assert (is_staff | (lambda w, k: k.get("ok")))(window_of(), {"ok": True})
