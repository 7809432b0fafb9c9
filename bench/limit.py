"""The limit: a bare ASGI app, no Django and no channel layer.

It keeps its sockets' ``send`` callables in a process-local set and writes one pre-encoded
frame to each. A text frame on the websocket ``/publish`` (or ``POST /publish``) (body: the message's kwargs as JSON) encodes the frame once
and writes it to every socket; nothing a realtime layer does can be cheaper in this server.

On ``/ws/hello/`` (the ``hello`` system of bench/run.py) a socket first exchanges what a
floorchannels window does when it opens: the client's hello frame in, a welcome frame of
the same size as floorchannels' out, with no key checked and nothing joined. Its connects
are the floor of any protocol that says hello, under the same server.
"""

import json

sockets = set()

#: A welcome as floorchannels writes one for an anonymous window with history (its size
#: matters, not its values); ``%d`` is the protocol version the hello asked for.
WELCOME = (
    '{"type":"welcome","window_id":"0123456789abcdef0123456789abcdef01234567","protocol":%d,'
    '"heartbeat":25.0,"key_expires":1764600000.0,"e":"0123456789abcdef",'
    '"seqs":{"0123456789ab":"0-0","123456789abc":"0-0"}}'
)


async def application(scope, receive, send):
    if scope["type"] == "websocket" and scope["path"] == "/publish":
        # The publisher's socket: each text frame it sends is written to every socket.
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            frame = {"type": "websocket.send", "text": message["text"]}
            for socket_send in list(sockets):
                await socket_send(frame)
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        if scope["path"] == "/ws/hello/":
            hello = json.loads((await receive())["text"])
            await send({"type": "websocket.send", "text": WELCOME % hello.get("protocol", 1)})
        sockets.add(send)
        try:
            while (await receive())["type"] != "websocket.disconnect":
                pass
        finally:
            sockets.discard(send)
    elif scope["type"] == "http":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        # The body is the kwargs' JSON; the frame wraps it as raw Channels' send_json would.
        frame = {"type": "websocket.send", "text": body.decode()}
        for socket_send in list(sockets):
            await socket_send(frame)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    elif scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
