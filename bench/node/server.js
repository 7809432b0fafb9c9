// The Node.js Socket.IO peer of the benchmark: what a team would pick instead of floorchannels.
//
// Every socket joins the room "bench". A socket that emits "publish" (the harness's publisher)
// has its payload emitted as "m" to the room, so Socket.IO encodes the packet once and writes
// the same frame to every socket, as a Socket.IO application broadcasting does.
// Usage: node server.js PORT   (listens on 127.0.0.1)
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
});

io.on("connection", (socket) => {
  socket.join("bench");
  socket.on("publish", (data) => {
    socket.leave("bench");
    io.to("bench").emit("m", data);
  });
});

httpServer.listen(port, "127.0.0.1"); // the harness waits for the port
process.on("SIGTERM", () => {
  io.close();
  process.exit(0);
});
