// The graphical console's page (templates/compute/instance_graphical_console.html,
// docs/console.md): asks the portal for a one-time ticket (POST, the session's CSRF token), opens
// the websocket it names and hands it to noVNC (vendored, static/vendor/novnc/). The portal relays
// the server's display over it as RFB in binary frames; a refusal or an end comes as the close
// frame's reason, which the page shows in plain words.
import RFB from "../vendor/novnc/core/rfb.js";

const card = document.querySelector("[data-graphical-console]");
const screen = card.querySelector("[data-console-screen]");
const state = card.querySelector("[data-console-state]");
const keys = card.querySelector("[data-console-keys]");
const reconnect = card.querySelector("[data-console-reconnect]");
const disconnect = card.querySelector("[data-console-close]");
const server = card.dataset.server;
let rfb = null;

function setState(text, live) {
  state.textContent = text;
  state.classList.toggle("is-live", Boolean(live));
}

function csrfToken() {
  try {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  } catch (error) {
    return "";
  }
}

async function ticket() {
  const response = await fetch(card.dataset.consoleOpen, {
    method: "POST",
    headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    credentials: "same-origin",
  });
  let body = {};
  try {
    body = await response.json();
  } catch (error) {
    body = {};
  }
  if (!response.ok) throw new Error(body.error || `The console could not be opened (${response.status}).`);
  if (!body.graphical_websocket_url) throw new Error("This server has no graphical console.");
  return body.graphical_websocket_url;
}

function ended(reason) {
  rfb = null;
  keys.disabled = true;
  disconnect.hidden = true;
  reconnect.hidden = false;
  setState(reason ? `Disconnected: ${reason}` : "Disconnected.", false);
}

async function connect() {
  reconnect.hidden = true;
  disconnect.hidden = false;
  setState(`Connecting to ${server}…`, false);
  let url;
  try {
    url = await ticket();
  } catch (error) {
    ended(error.message);
    return;
  }
  // Our own socket, handed to noVNC: its close frame carries the portal's reason.
  const socket = new WebSocket(url, ["binary"]);
  let reason = "";
  socket.addEventListener("close", (event) => {
    if (event.code === 1006) reason = "The connection to the portal was lost.";
    else if (event.code !== 1000) reason = event.reason || "The console was closed.";
  });
  screen.replaceChildren();
  const session = new RFB(screen, socket);
  session.scaleViewport = true; // the whole screen in the box, on a phone too
  session.background = "#0f172a";
  session.addEventListener("connect", () => {
    setState(`Connected to ${server}`, true);
    keys.disabled = false;
    session.focus();
  });
  session.addEventListener("disconnect", () => {
    // noVNC hears of the close before our listener may have: read the reason a moment later.
    setTimeout(() => ended(reason), 0);
  });
  session.addEventListener("securityfailure", (event) => {
    reason = event.detail.reason || "The server's display refused the connection.";
  });
  rfb = session;
}

keys.addEventListener("click", () => {
  if (rfb) {
    rfb.sendCtrlAltDel();
    rfb.focus();
  }
});
reconnect.addEventListener("click", connect);
disconnect.addEventListener("click", () => {
  if (rfb) rfb.disconnect();
});
connect();
