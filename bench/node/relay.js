// bench/relay.py's Node comparison relay: socket.io 4 + ws, the stack the original app used, doing
// only what the minimal python-socketio relay does (send_audio forwarded as user_audio_chunk).
//   node bench/node/relay.js <port> <sink port>
"use strict";
const http = require("http");
const { Server } = require("socket.io");
const WebSocket = require("ws");

const [port, sink] = process.argv.slice(2).map(Number);
const server = http.createServer();
// No per-message compression (as the Python relays), and the chunk's ~4.3 KB well under the limit.
const io = new Server(server, { transports: ["websocket"], perMessageDeflate: false });

io.on("connection", (socket) => {
  let up = null;
  socket.on("conversation_start", (_data, ack) => {
    const ws = new WebSocket(`ws://127.0.0.1:${sink}/v1/convai/conversation`, { perMessageDeflate: false });
    ws.once("open", () => ws.send('{"type":"conversation_initiation_client_data"}'));
    ws.once("message", () => {
      up = ws;
      if (typeof ack === "function") ack({ ok: true });
    });
    ws.once("error", (err) => {
      if (typeof ack === "function") ack({ ok: false, error: String(err) });
    });
  });
  socket.on("send_audio", (data) => {
    if (up) up.send('{"user_audio_chunk":"' + data.audio + '"}');
  });
  socket.on("user-audio-end", () => {
    if (up) up.send('{"type":"end_user_audio"}');
  });
  socket.on("disconnect", () => {
    if (up) up.close();
    up = null;
  });
});

server.listen(port, "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
