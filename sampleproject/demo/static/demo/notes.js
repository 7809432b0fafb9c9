/*
 * The live notes page: a list kept in sync with the Notes API by liveList(), a form that
 * POSTs, and on each of your own notes a share switch (PATCH) and a delete button.
 * Nothing here updates the list after a write: the server's event does, in every window.
 */
"use strict";

(() => {
  const { client } = window.demo;
  const me = document.body.dataset.user;
  const byId = (id) => document.getElementById(id);
  const [list, form, noteText, noteShared, notesError] = ["notes", "note-form", "note-text", "note-shared", "notes-error"].map(byId);
  const csrf = (document.cookie.match(/csrftoken=([^;]+)/) || [])[1];

  /* HTTP answers of the Notes API, in words. */
  const HTTP_MESSAGES = {
    400: "The note was not accepted: check its text.",
    403: "Only the note's author may change it.",
    404: "That note is gone, or it is no longer shared with you.",
  };

  async function api(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
      body: body ? JSON.stringify(body) : undefined,
      credentials: "same-origin",
    });
    notesError.textContent = response.ok
      ? ""
      : HTTP_MESSAGES[response.status] || `The server answered ${response.status}: try again in a moment.`;
    return response;
  }

  function noteItem(note) {
    const item = document.createElement("li");
    item.dataset.pk = note.id;
    item.className = note.shared ? "note is-shared" : "note";
    const text = Object.assign(document.createElement("span"), { className: "text", textContent: note.text });
    const meta = Object.assign(document.createElement("span"), { className: "meta" });
    const mine = note.author === me;
    meta.textContent = mine ? (note.shared ? "yours · shared" : "yours · private") : `shared by ${note.author}`;
    item.append(text, meta);
    if (mine) {
      const actions = Object.assign(document.createElement("span"), { className: "actions" });
      const toggle = document.createElement("label");
      toggle.className = "switch";
      const box = Object.assign(document.createElement("input"), { type: "checkbox", checked: note.shared });
      box.className = "share-toggle";
      box.setAttribute("role", "switch");
      box.dataset.pk = note.id;
      toggle.append(box, " Shared");
      const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "Delete" });
      remove.className = "button subtle danger";
      remove.addEventListener("click", () => api("DELETE", `/api/notes/${note.id}/`));
      actions.append(toggle, remove);
      item.append(actions);
    }
    return item;
  }

  // excerpt: live-list
  const notes = floorchannels.liveList(client, "notes", {
    refetch: () => api("GET", "/api/notes/").then((response) => response.json()),
    sort: (a, b) => b.id - a.id,
    onChange: (notes) => list.replaceChildren(...notes.map(noteItem)),
  });
  // end excerpt
  // Subscribed and loaded: from now on every change reaches this list.
  notes.ready.then(() => (list.dataset.loaded = "true"));

  // excerpt: share
  list.addEventListener("change", (event) => {
    const box = event.target.closest(".share-toggle");
    if (box) api("PATCH", `/api/notes/${box.dataset.pk}/`, { shared: box.checked });
  });
  // end excerpt

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    api("POST", "/api/notes/", { text: noteText.value, shared: noteShared.checked });
    noteText.value = "";
  });
})();
