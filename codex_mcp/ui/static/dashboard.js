// The dashboard's own script (not vendored): live updates from /api/stream, the terminal, Copy branch.
"use strict";

async function refresh(el) {
  // The server renders the fragment; it replaces the part in place (no page reload). An unchanged
  // fragment is left alone, and the files a person opened in a diff stay open.
  const answer = await fetch(el.dataset.src, { headers: { accept: "text/html" }, cache: "no-store" });
  if (!answer.ok) return;
  const html = await answer.text();
  if (html === el.dataset.rendered) return;
  const open = new Set(Array.from(el.querySelectorAll("details[open][data-key]")).map((d) => d.dataset.key));
  el.innerHTML = html;
  el.dataset.rendered = html;
  el.querySelectorAll("details[data-key]").forEach((d) => { if (open.has(d.dataset.key)) d.open = true; });
  updateAttention();
  updateSince();
}

function updateAttention() {
  const marker = document.querySelector("[data-waiting]");
  if (!marker) return;
  const n = Number(marker.dataset.waiting || "0");
  const badge = document.getElementById("attention");
  if (badge) {
    badge.textContent = n + " waiting";
    badge.classList.toggle("quiet", n === 0);
  }
  document.title = (n ? "(" + n + ") " : "") + document.title.replace(/^\(\d+\) /, "");
}

function setAttention(n) {
  const badge = document.getElementById("attention");
  if (badge) { badge.textContent = n + " waiting"; badge.classList.toggle("quiet", n === 0); }
  document.title = (n ? "(" + n + ") " : "") + document.title.replace(/^\(\d+\) /, "");
}

// Browser notifications: asked for once, after a click (browsers ignore a request nobody clicked for).
function askForNotifications() {
  if (!("Notification" in window) || Notification.permission !== "default") return;
  if (localStorage.getItem("codex-mcp-notifications-asked")) return;
  localStorage.setItem("codex-mcp-notifications-asked", "1");
  Notification.requestPermission();
}

const lastActivity = new Map();

function notifyWaiting(row) {
  // Only a change to waiting notifies: a row seen waiting before does not ring again.
  const before = lastActivity.get(row.id);
  lastActivity.set(row.id, row.status === "running" ? row.activity : null);
  if (row.status !== "running" || row.activity !== "waiting" || before === "waiting") return;
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const note = new Notification(row.id + " is waiting for you", { body: row.activity_detail || "", tag: "codex-mcp-" + row.id });
  note.onclick = () => { window.focus(); window.location.href = "/instances/" + row.id; };
}

function liveUpdates() {
  const list = document.querySelector("[data-live-list]");
  const details = document.querySelector("[data-live-instance]");
  const anyChange = Array.from(document.querySelectorAll("[data-live-any]"));
  const forInstance = (id) => Array.from(document.querySelectorAll("[data-live-for]")).filter((el) => el.dataset.liveFor === id);
  // Files change without the database knowing (an agent editing): parts with data-poll also look
  // every few seconds while the page is in front.
  document.querySelectorAll("[data-poll]").forEach((el) => {
    setInterval(() => { if (document.visibilityState === "visible") soon(el); }, Number(el.dataset.poll));
  });
  const source = new EventSource("/api/stream");
  const pending = new Map();
  const soon = (el) => {
    // Several changes at once cost one fetch per part of the page.
    if (pending.has(el)) return;
    pending.set(el, setTimeout(() => { pending.delete(el); refresh(el); }, 50));
  };
  source.addEventListener("instance", (msg) => {
    const row = JSON.parse(msg.data);
    notifyWaiting(row);
    if (list) soon(list);
    anyChange.forEach(soon);
    forInstance(row.id).forEach(soon);
    if (details && details.dataset.liveInstance === row.id) {
      if (row.status !== details.querySelector("[data-status]")?.dataset.status) {
        window.location.reload();  // running <-> terminated changes the terminal too
      } else {
        soon(details);
      }
    }
  });
  source.addEventListener("event", (msg) => {
    const ev = JSON.parse(msg.data);
    anyChange.forEach(soon);
    forInstance(ev.instance_id).forEach(soon);
    if (details && details.dataset.liveInstance === ev.instance_id) soon(details);
  });
  source.addEventListener("attention", (msg) => setAttention(JSON.parse(msg.data).waiting));
}

// "since 18:02:11 UTC" becomes "(for 3 min)" (kept current); the UTC time stays in the tooltip.
function ago(seconds) {
  if (seconds < 60) return Math.max(0, Math.floor(seconds)) + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min";
  if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  return Math.floor(seconds / 86400) + " d";
}

function updateSince() {
  document.querySelectorAll("time[data-since]").forEach((t) => {
    const at = Date.parse(t.getAttribute("datetime").replace(" ", "T"));
    if (Number.isNaN(at)) return;
    if (!t.title) t.title = t.textContent.replace(/^since /, "");
    t.textContent = "(for " + ago((Date.now() - at) / 1000) + ")";
  });
}

function fit(term, box) {
  // The terminal has the pane's size (so the agent's window keeps its own); shrink the font until the
  // pane's width fits the page instead of scrolling sideways.
  const screen = box.querySelector(".xterm-screen");
  if (!screen) return;
  const size = term.options.fontSize;
  const scale = Math.min(1, (box.clientWidth - 8) / screen.scrollWidth, (box.clientHeight - 8) / screen.scrollHeight);
  // Never below 10 px: a wider pane scrolls sideways rather than becoming unreadable.
  if (scale < 1) term.options.fontSize = Math.max(10, Math.floor(size * scale));
}

function openTerminal() {
  const box = document.getElementById("terminal");
  if (!box || typeof Terminal === "undefined") return;
  const term = new Terminal({ convertEol: false, scrollback: 2000, fontSize: 13, disableStdin: true });
  term.open(box);
  let socket = null;
  const mode = document.getElementById("terminal-mode");
  const connect = (write) => {
    if (socket) socket.close();
    term.reset();
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + box.dataset.ws + (write ? "?mode=write" : "");
    socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    let first = true;
    socket.onmessage = (msg) => {
      if (first && typeof msg.data === "string") {
        first = false;
        const info = JSON.parse(msg.data);
        term.resize(info.cols, info.rows);
        fit(term, box);
        term.options.disableStdin = !info.writable;
        box.dataset.state = info.writable ? "writing" : "watching";
        if (mode) mode.textContent = info.writable ? "you are typing into this terminal" : "watching (read-only)";
        return;
      }
      term.write(new Uint8Array(msg.data));
    };
    socket.onclose = (ev) => {
      box.dataset.state = "closed";
      if (mode && ev.code !== 1000) mode.textContent = "terminal closed" + (ev.reason ? ": " + ev.reason : "");
    };
  };
  term.onData((data) => {
    if (socket && socket.readyState === WebSocket.OPEN && box.dataset.state === "writing") socket.send(new TextEncoder().encode(data));
  });
  connect(false);
  const take = document.getElementById("take-over");
  if (take) {
    take.addEventListener("click", () => {
      connect(true);
      take.remove();
      term.focus();
    });
  }
}

document.addEventListener("click", (ev) => {
  const button = ev.target.closest("[data-copy]");
  if (!button) return;
  const text = button.dataset.copy;
  const done = () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy branch"; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
  } else {
    fallbackCopy(text, done);
  }
});

function fallbackCopy(text, done) {
  const area = document.createElement("textarea");
  area.value = text;
  document.body.appendChild(area);
  area.select();
  document.execCommand("copy");
  area.remove();
  done();
}

document.addEventListener("click", askForNotifications, { once: true });

document.addEventListener("DOMContentLoaded", () => {
  liveUpdates();
  openTerminal();
  updateSince();
  setInterval(updateSince, 15000);
});
