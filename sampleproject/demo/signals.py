"""The demo's server signals. Imported by floorchannels' autodiscovery."""

import time

from floorchannels import (
    BROADCAST,
    USER,
    WINDOW,
    acall,
    browser,
    call,
    everyone,
    is_authenticated,
    is_staff,
    signal,
)


@signal("demo.add", is_allowed_to=everyone)
def add(window, a: float, b: float) -> float:
    """Answered in the reply: the simplest round trip."""
    return a + b


@signal("demo.chat", is_allowed_to=everyone)
async def chat(window, text: str) -> None:
    """Re-broadcast a chat line to every window, with the sender's name."""
    text = text.strip()[:500]
    if text:
        user = window.user
        author = user.get_username() if user.is_authenticated else "anonymous"
        await acall("chat.message", BROADCAST, kwargs={"author": author, "text": text})


@signal("demo.notify_tabs", is_allowed_to=is_authenticated)
async def notify_tabs(window, message: str = "Hello from the server") -> None:
    """A toast in every tab of the caller's account, none of anyone else's."""
    await browser.notify(message, level="success").asend(USER, window=window)


@signal("demo.staff_only", is_allowed_to=is_staff)
def staff_only(window) -> str:
    """Refused to anyone but staff: the reply is the error ``forbidden``."""
    return "You are staff."


@signal("demo.progress", is_allowed_to=everyone, queue="slow")
def progress(window, steps: int = 10, delay: float = 0.3) -> None:
    """A slow task on the 'slow' queue that reports its progress to the calling window.

    With Redis (REDIS_URL set) the call waits in Redis until a worker runs it:
    ``python manage.py runworker floorchannels.slow``. It runs at least once: if its worker
    dies mid-task, another starts it over (floorchannels.queues.current_call().attempt > 1).
    """
    steps = max(1, min(steps, 100))
    delay = max(0.0, min(delay, 2.0))
    for step in range(1, steps + 1):
        time.sleep(delay)
        call("demo.progress", WINDOW, window=window, kwargs={"done": step, "total": steps})
