// A minimal inbox: REST for the list, the WebSocket for live updates.
"use strict";

const state = { token: null, socket: null, lastId: 0, items: new Map(), retry: 500 };
const $ = (id) => document.getElementById(id);

function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.token}` };
  return fetch(path, { ...options, headers }).then((r) => {
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    return r.json();
  });
}

function setBadge(count) {
  $("badge").textContent = String(count);
  $("badge").dataset.count = String(count);
}

function setStatus(text) {
  $("status").textContent = text;
}

function render(n) {
  let li = document.querySelector(`li[data-id="${n.id}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.id = String(n.id);
    const title = document.createElement("div");
    title.className = "title";
    const body = document.createElement("div");
    body.className = "body";
    const meta = document.createElement("div");
    meta.className = "meta";
    li.append(title, body, meta);
    li.addEventListener("click", () => markRead(Number(li.dataset.id)));
    const list = $("items");
    // Newest first: insert before the first item with a smaller id.
    const after = [...list.children].find((c) => Number(c.dataset.id) < n.id);
    list.insertBefore(li, after || null);
  }
  li.querySelector(".title").textContent = n.title;
  li.querySelector(".body").textContent = n.body;
  li.querySelector(".meta").textContent = `${n.type} · ${new Date(n.created_at).toLocaleString()}`;
  li.classList.toggle("unread", !n.read_at);
  state.items.set(n.id, n);
  state.lastId = Math.max(state.lastId, n.id);
  $("empty").hidden = state.items.size > 0;
}

function markRead(id) {
  const n = state.items.get(id);
  if (!n || n.read_at) return;
  if (state.socket && state.socket.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify({ type: "mark_read", id }));
  } else {
    api(`/api/notifications/${id}/read`, { method: "POST" }).catch(() => {});
  }
  render({ ...n, read_at: new Date().toISOString() });
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/notifications/${state.token}/`);
  state.socket = socket;
  socket.onopen = () => {
    setStatus("live");
    state.retry = 500;
    socket.send(JSON.stringify({ type: "resume", since: state.lastId }));
  };
  socket.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.type === "notification") render(data.notification);
    else if (data.type === "unread_count") setBadge(data.count);
    else if (data.type === "resync") socket.send(JSON.stringify({ type: "resume", since: state.lastId }));
  };
  socket.onclose = (event) => {
    state.socket = null;
    if (event.code === 4401) { setStatus("token rejected"); return; }
    setStatus("reconnecting…");
    setTimeout(connect, state.retry);
    state.retry = Math.min(state.retry * 2, 10000);
  };
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  state.token = $("token").value.trim();
  if (!state.token) return;
  try {
    const page = await api("/api/notifications?limit=50");
    page.items.reverse().forEach(render);
    const unread = await api("/api/notifications/unread-count");
    setBadge(unread.count);
  } catch (err) {
    setStatus(`cannot load inbox (${err.message})`);
    return;
  }
  $("read-all").disabled = false;
  connect();
});

$("read-all").addEventListener("click", () => {
  api("/api/notifications/read-all", { method: "POST" }).then(() => {
    for (const n of state.items.values()) if (!n.read_at) render({ ...n, read_at: new Date().toISOString() });
  });
});

// ?token=... in the page URL fills the form and connects (handy for tests and demos).
const fromUrl = new URLSearchParams(location.search).get("token");
if (fromUrl) {
  $("token").value = fromUrl;
  history.replaceState(null, "", location.pathname);
  $("login").requestSubmit();
}
