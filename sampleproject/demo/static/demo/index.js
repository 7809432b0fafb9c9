/*
 * The signals page: chat, who is online and the progress of a slow task. The buttons and
 * forms that call a signal and show its answer need no script: see their data-fc-call.
 */
"use strict";

(() => {
  const { client, describe } = window.demo;
  const CHAT_LINES = 50;
  const byId = (id) => document.getElementById(id);
  const [chatLog, chatForm, chatText, chatError] = ["chat-log", "chat-form", "chat-text", "chat-error"].map(byId);
  const [online, progressBar, progressText] = ["online", "progress", "progress-text"].map(byId);

  // excerpt: chat
  client.on("chat.message", ({ author, text }) => {
    const line = document.createElement("li");
    line.append(Object.assign(document.createElement("strong"), { textContent: author }), ": " + text);
    chatLog.append(line);
  });
  chatForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await client.call("demo.chat", { text: chatText.value });
      chatText.value = "";
    } catch (error) {
      chatError.textContent = describe(error);
    }
  });
  // end excerpt

  // The log keeps the last CHAT_LINES lines and follows the newest one.
  new MutationObserver(() => {
    while (chatLog.children.length > CHAT_LINES) chatLog.firstElementChild.remove();
    chatLog.scrollTop = chatLog.scrollHeight;
    chatError.textContent = "";
  }).observe(chatLog, { childList: true });

  // excerpt: presence
  async function showOnline() {
    const { users } = await client.call("fc.presence.list", { topic: '"chat"' });
    const label = ({ name, windows }) => (name || "anonymous") + (windows.length > 1 ? ` (${windows.length} tabs)` : "");
    online.textContent = users.map(label).join(", ");
  }
  client.addEventListener("welcome", showOnline);
  client.on("fc.presence.diff", showOnline);
  // end excerpt
  if (client.state === "open") showOnline();

  // excerpt: progress
  client.on("demo.progress", ({ done, total }) => {
    progressBar.max = total;
    progressBar.value = done;
    progressText.textContent = `${done} / ${total}`;
  });
  // end excerpt
})();
