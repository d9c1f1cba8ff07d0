// The server page's consoles (templates/compute/instance_detail.html, docs/console.md).
//
// "Open serial console" asks the portal for a one-time ticket (POST, the session's CSRF token),
// opens the websocket it names and runs xterm.js on it: binary frames are bytes both ways, text
// frames from the portal say how the session stands ({"type": "opened" | "closed", ...}).
// "Open the cloud's console" asks for the address of the cloud's own console and opens it in a
// new tab. The console card sits in a region htmx swaps while the server changes: it is kept with
// hx-preserve, so the handlers are delegated from the document.
(() => {
  "use strict";

  // xterm.js measures and colours itself with <style> elements it creates. The page's CSP allows
  // no inline style without the page's nonce: give each new <style> element the nonce this script
  // was loaded with (set before it is inserted, which is when the browser checks it).
  const nonce = document.currentScript && document.currentScript.nonce;
  if (nonce) {
    const createElement = Document.prototype.createElement;
    Document.prototype.createElement = function (name, options) {
      const element = createElement.call(this, name, options);
      if (String(name).toLowerCase() === "style") element.setAttribute("nonce", nonce);
      return element;
    };
  }

  const csrfToken = () => {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  };

  async function ask(url) {
    const response = await fetch(url, {
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
    if (!response.ok) {
      throw new Error(body.error || `The console could not be opened (${response.status}).`);
    }
    return body;
  }

  const sessions = new WeakMap(); // card -> {socket, terminal}

  function say(card, text) {
    const message = card.querySelector("[data-console-message]");
    if (!message) return;
    message.textContent = text;
    message.hidden = !text;
  }

  function setState(card, text, live) {
    const state = card.querySelector("[data-console-state]");
    if (state) {
      state.textContent = text;
      state.classList.toggle("is-live", Boolean(live));
    }
  }

  function closeSession(card) {
    const session = sessions.get(card);
    if (session && session.socket.readyState <= WebSocket.OPEN) session.socket.close(1000);
  }

  async function openSerial(card, button) {
    closeSession(card);
    say(card, "");
    button.hidden = true; // "Disconnect" takes its place while the session is open
    const panel = card.querySelector("[data-console-panel]");
    const screen = card.querySelector("[data-console-screen]");
    const log = card.querySelector("[data-console-log]");
    let grant;
    try {
      grant = await ask(button.dataset.consoleOpen);
    } catch (error) {
      say(card, error.message);
      button.hidden = false;
      return;
    }
    panel.hidden = false;
    if (log) log.hidden = true;
    screen.replaceChildren();
    const terminal = new window.Terminal({
      cursorBlink: true,
      fontFamily: getComputedStyle(document.documentElement).getPropertyValue("--mono") || "monospace",
      fontSize: window.innerWidth < 600 ? 12 : 14,
      lineHeight: 1.2, // room below the baseline: underscores are not cut off
      scrollback: 2000,
      theme: { background: "#0f172a", foreground: "#e2e8f0", cursor: "#e2e8f0" },
    });
    const fit = new window.FitAddon.FitAddon();
    terminal.loadAddon(fit);
    terminal.open(screen);
    fit.fit();
    const socket = new WebSocket(grant.websocket_url);
    socket.binaryType = "arraybuffer";
    sessions.set(card, { socket, terminal });
    setState(card, "Connecting…", false);
    const encoder = new TextEncoder();
    let reason = "";
    terminal.onData((data) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(data));
    });
    socket.addEventListener("message", (event) => {
      if (typeof event.data !== "string") {
        terminal.write(new Uint8Array(event.data));
        return;
      }
      const message = JSON.parse(event.data);
      if (message.type === "opened") {
        setState(card, `Connected to ${message.server}`, true);
        socket.send(encoder.encode("\r")); // wake the line up: the guest prints its prompt again
        terminal.focus();
      } else if (message.type === "closed") {
        reason = message.reason;
      }
    });
    socket.addEventListener("close", () => {
      setState(card, reason ? `Disconnected: ${reason}` : "Disconnected.", false);
      terminal.options.disableStdin = true;
      button.hidden = false;
      button.textContent = "Reconnect";
    });
    // Fit the terminal to its box whenever the box changes or comes back on screen (xterm.js
    // pauses drawing while off screen, and lines re-wrap when the box narrows): the prompt stays
    // in sight.
    const refit = () =>
      requestAnimationFrame(() => {
        if (!screen.isConnected || screen.clientWidth === 0) return;
        fit.fit();
        terminal.scrollToBottom();
        terminal.refresh(0, terminal.rows - 1); // drawn again: rows drawn while paused are stale
      });
    const resized = new ResizeObserver(refit);
    resized.observe(screen);
    const shown = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) refit();
    });
    shown.observe(screen);
    socket.addEventListener("close", () => {
      resized.disconnect();
      shown.disconnect();
    });
  }

  async function openRemote(card, button) {
    say(card, "");
    // Opened now, while the click still counts as the person's: a window opened after the answer
    // would be taken for a pop-up.
    const tab = window.open("", "_blank");
    button.disabled = true;
    try {
      const grant = await ask(button.dataset.consoleRemote);
      if (!grant.console_url) throw new Error("This server's cloud has no console to open.");
      if (tab) {
        tab.opener = null;
        tab.location.href = grant.console_url;
      } else {
        say(card, `Open the console: ${grant.console_url}`);
      }
    } catch (error) {
      if (tab) tab.close();
      say(card, error.message);
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("click", (event) => {
    const card = event.target.closest(".console-card");
    if (!card) return;
    const serial = event.target.closest("[data-console-open]");
    const remote = event.target.closest("[data-console-remote]");
    if (serial) openSerial(card, serial);
    else if (remote) openRemote(card, remote);
    else if (event.target.closest("[data-console-close]")) closeSession(card);
  });
})();
