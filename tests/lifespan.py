"""The ASGI lifespan protocol for the tests' own small applications."""

from typing import Any


async def serve_lifespan(receive: Any, send: Any) -> None:
    """Answer a ``lifespan`` scope: uvicorn, hypercorn and granian open one at start-up."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
