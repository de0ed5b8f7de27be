// The dashboard's own script (not vendored): live updates from /api/stream, the terminal, Copy branch.
"use strict";

function refresh(el) {
  // htmx swaps the server-rendered fragment in; no page reload.
  return htmx.ajax("GET", el.dataset.src, { target: el, swap: "innerHTML" }).then(updateAttention);
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

function liveUpdates() {
  const list = document.querySelector("[data-live-list]");
  const details = document.querySelector("[data-live-instance]");
  const source = new EventSource("/api/stream");
  let pending = null;
  const soon = (el) => {
    // Several rows changing at once cost one fetch.
    if (pending) return;
    pending = setTimeout(() => { pending = null; refresh(el); }, 50);
  };
  source.addEventListener("instance", (msg) => {
    const row = JSON.parse(msg.data);
    if (list) soon(list);
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
    if (details && details.dataset.liveInstance === ev.instance_id) soon(details);
  });
  source.addEventListener("attention", (msg) => {
    const badge = document.getElementById("attention");
    const n = JSON.parse(msg.data).waiting;
    if (badge) { badge.textContent = n + " waiting"; badge.classList.toggle("quiet", n === 0); }
    document.title = (n ? "(" + n + ") " : "") + document.title.replace(/^\(\d+\) /, "");
  });
}

function fit(term, box) {
  // The terminal has the pane's size (so the agent's window keeps its own); shrink the font until the
  // pane's width fits the page instead of scrolling sideways.
  const screen = box.querySelector(".xterm-screen");
  if (!screen) return;
  const size = term.options.fontSize;
  const scale = Math.min(1, (box.clientWidth - 8) / screen.scrollWidth, (box.clientHeight - 8) / screen.scrollHeight);
  if (scale < 1) term.options.fontSize = Math.max(7, Math.floor(size * scale));
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

document.addEventListener("DOMContentLoaded", () => {
  liveUpdates();
  openTerminal();
});
