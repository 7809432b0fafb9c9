"""Signals the tests call; each exercises one behaviour of the registry or the consumer."""

import asyncio

from floorchannels import (
    WINDOW,
    acall,
    everyone,
    has_perm,
    is_authenticated,
    is_staff,
    is_superuser,
    signal,
)

#: What queued handlers ran, for the tests to read.
ran: list = []

#: Events the tests open and wait on (see ``t.gate``); cleared before every test.
gates: dict[str, asyncio.Event] = {}


def gate(name: str) -> asyncio.Event:
    """The event called ``name``, created on first use (in the running test's loop)."""
    return gates.setdefault(name, asyncio.Event())


@signal("t.echo", is_allowed_to=everyone)
def echo(window, **kwargs):
    return {"kwargs": kwargs, "window_id": window.window_id, "user": window.user.get_username()}


@signal("t.add", is_allowed_to=everyone)
async def add(window, a: int, b: int = 0) -> int:
    return a + b


@signal("t.typed", is_allowed_to=everyone)
def typed(window, name: str, tags: list[str], ratio: float | None = None, mode: str = "x") -> str:
    return f"{name}:{len(tags)}:{ratio}:{mode}"


@signal("t.auth", is_allowed_to=is_authenticated)
def auth_only(window):
    return window.user.get_username()


@signal("t.staff", is_allowed_to=is_staff)
def staff_only(window):
    return "staff"


@signal("t.superuser", is_allowed_to=is_superuser)
def superuser_only(window):
    return "superuser"


@signal("t.perm", is_allowed_to=has_perm("auth.view_user"))
def perm_only(window):
    return "perm"


@signal("t.custom", is_allowed_to=lambda window, kwargs: kwargs.get("x") == 1)
def custom(window, x: int):
    return x


@signal("t.server_only")
def server_only(window, value: int = 0):
    ran.append(("server_only", value, window.window_id))
    return value


@signal("t.boom", is_allowed_to=everyone)
def boom(window):
    raise RuntimeError("secret internals")


@signal("t.slow", is_allowed_to=everyone)
async def slow(window, seconds: float = 5):
    await asyncio.sleep(seconds)
    return "done"


@signal("t.gate", is_allowed_to=everyone)
async def gated(window, name: str = "default"):
    """Busy until the test opens gate ``name``: a slow handler whose duration the test decides
    (no guessed sleep). Sets ``<name>.entered`` first, so the test knows it is running."""
    gate(f"{name}.entered").set()
    await gate(name).wait()
    return "done"


@signal("t.bad_result", is_allowed_to=everyone)
def bad_result(window):
    return object()


@signal("t.multi", is_allowed_to=everyone)
def multi_one(window):
    return 1


@signal("t.multi", is_allowed_to=everyone)
async def multi_two(window):
    return 2


@signal("t.queued", is_allowed_to=everyone, queue="tests")
async def queued(window, steps: int = 2):
    ran.append(("queued", steps, window.window_id))
    for step in range(1, steps + 1):
        await acall("t.progress", WINDOW, window=window, kwargs={"done": step, "total": steps})


@signal("t.queued_fail", queue="tests")
def queued_fail(window):
    """A queued handler that raises: its worker logs it, a task backend's result says FAILED."""
    ran.append(("queued_fail", window.window_id))
    raise RuntimeError("the queued handler failed")
