// A single-page app on its own origin: it holds a DRF token (from its own sign-in; here in
// the URL's fragment, with the API's address), gets window keys from the key view with it,
// calls a signal, receives pushes to its user and the live events of the notes API.
//
// Everything it sees is kept in `window.spa` for the tests (tests/e2e/test_spa.py).
const params = new URLSearchParams(location.hash.slice(1));
const api = params.get("api");
const token = params.get("token");

const spa = (window.spa = {
  user: null,
  pushes: [],
  notes: [],
  windows: [],
  disconnects: [],
  refreshes: [],
  keyErrors: [],
  refused: [],
  replaced: [],
  resyncs: [],
});

// `#key=…`: a key handed over some other way, for the test of an origin the server does not list.
const key = params.get("key");
const client = floorchannels.connect(
  key
    ? { windowKey: key, url: `${api.replace(/^http/, "ws")}/ws/floorchannels/`, backoffMax: 1000 }
    : {
        // POST /floorchannels/key/ with the token; the answer names the socket's URL too.
        keyUrl: `${api}/floorchannels/key/`,
        keyRequest: { headers: () => ({ Authorization: `Token ${token}` }) },
        backoffMax: 1000,
        // The tests pass a negative margin to play a tab whose clock is behind the server's:
        // it believes its key still valid, and learns otherwise from the server (4410).
        keyRenewBefore: Number(params.get("renewBefore") ?? 60),
      },
);
window.spaClient = client;

client.addEventListener("statechange", (e) => (document.getElementById("state").textContent = e.detail.state));
client.addEventListener("welcome", (e) => spa.windows.push(e.detail.window_id));
client.addEventListener("disconnect", (e) => spa.disconnects.push({ code: e.detail.code, reason: e.detail.reason }));
client.addEventListener("refresh", (e) => spa.refreshes.push({ source: e.detail.source, at: Date.now() / 1000 }));
client.addEventListener("keyerror", (e) => spa.keyErrors.push(String(e.detail.error.message ?? e.detail.error)));
client.addEventListener("refused", (e) => spa.refused.push({ code: e.detail.code, reason: e.detail.reason }));
client.addEventListener("resync", (e) => spa.resyncs.push(e.detail.reason));
client.addEventListener("replaced", (e) => spa.replaced.push({ ...e.detail }));

client.on("spa.pushed", ({ n }) => {
  spa.pushes.push(n);
  const li = document.createElement("li");
  li.textContent = `push ${n}`;
  document.getElementById("pushes").append(li);
});

client.call("t.echo", { from: "spa" }).then((reply) => {
  spa.user = reply.user;
  document.getElementById("user").textContent = reply.user;
});

client.subscribe("notes", (event) => {
  spa.notes.push({ action: event.action, text: event.data?.text });
  const li = document.createElement("li");
  li.textContent = `${event.action}: ${event.data?.text}`;
  document.getElementById("notes").append(li);
});
