"""The python-socketio peer of the benchmark, served by uvicorn (``bench.pysocketio:application``).

The same application as the Node.js peer (bench/node/server.js): every socket joins the
room ``bench``; a socket that emits ``publish`` (the harness's publisher) leaves the room
and has its payload emitted as ``m`` to it, which is how a python-socketio application
broadcasts.
"""

import socketio

server = socketio.AsyncServer(
    async_mode="asgi", transports=["websocket"], logger=False, engineio_logger=False
)


@server.event
async def connect(sid, environ):
    await server.enter_room(sid, "bench")


@server.on("publish")
async def publish(sid, data):
    await server.leave_room(sid, "bench")
    await server.emit("m", data, room="bench")


application = socketio.ASGIApp(server)
