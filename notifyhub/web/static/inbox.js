// NotifyHub's browser inbox: an unread badge and the recipient's messages, live.
//
// Embed it in any page:
//   <div id="notifyhub-inbox"></div>
//   <script src="https://notifyhub.example/inbox.js" data-token-url="/my-backend/notifyhub-token"></script>
// The token URL is the tenant's own backend route: it calls POST /api/v1/ws-token with the
// tenant's API key for the signed-in user and answers {"token": "..."}. The browser never
// holds the API key. For a demo, put a token in the page's fragment instead: #token=...
(function () {
  "use strict";
  var script = document.currentScript;
  var origin = new URL(script.src, location.href).origin;
  var tokenUrl = script.getAttribute("data-token-url");
  var mount = document.getElementById(script.getAttribute("data-mount") || "notifyhub-inbox");
  var token = null;
  var unread = 0;
  var newest = null;
  var retryMs = 1000;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;  // text only: messages are never HTML here
    return node;
  }

  var badge = el("span", { "class": "nh-badge", "data-testid": "unread-badge" }, "0");
  var status = el("span", { "class": "nh-status", "data-testid": "status" }, "connecting");
  var list = el("ul", { "class": "nh-list", "data-testid": "messages" });
  var header = el("div", { "class": "nh-header" });
  header.appendChild(el("span", {}, "Inbox "));
  header.appendChild(badge);
  header.appendChild(status);
  mount.appendChild(header);
  mount.appendChild(list);

  function setUnread(n) { unread = Math.max(0, n); badge.textContent = String(unread); }

  function api(method, path) {
    return fetch(origin + path, { method: method, headers: { "Authorization": "Bearer " + token } })
      .then(function (r) {
        if (!r.ok && r.status !== 204) throw new Error(method + " " + path + ": " + r.status);
        return r.status === 204 ? null : r.json();
      });
  }

  function show(message, atTop) {
    if (document.getElementById("nh-" + message.id)) return;
    var item = el("li", { "id": "nh-" + message.id, "class": message.read_at ? "nh-read" : "nh-unread",
                          "data-testid": "message" });
    if (message.title) item.appendChild(el("strong", {}, message.title + " "));
    item.appendChild(el("span", {}, message.body));
    item.addEventListener("click", function () { markRead(message, item); });
    if (atTop) list.insertBefore(item, list.firstChild); else list.appendChild(item);
  }

  function markRead(message, item) {
    if (item.className === "nh-read") return;
    api("POST", "/api/v1/inbox/" + message.id + "/read").then(function () {
      item.className = "nh-read";
      setUnread(unread - 1);
    });
  }

  function getToken() {
    var fromFragment = new URLSearchParams(location.hash.slice(1)).get("token");
    if (fromFragment || !tokenUrl) return Promise.resolve(fromFragment);
    return fetch(tokenUrl, { method: "POST", credentials: "include" })
      .then(function (r) { return r.json(); })
      .then(function (body) { return body.token || (body.data && body.data.token); });
  }

  function connect() {
    var url = origin.replace(/^http/, "ws") + "/api/v1/inbox/stream?token=" + encodeURIComponent(token) +
      (newest ? "&since=" + newest : "");
    var socket = new WebSocket(url);
    socket.onopen = function () { status.textContent = "live"; retryMs = 1000; };
    socket.onmessage = function (event) {
      var frame = JSON.parse(event.data);
      if (frame.type !== "message" && frame.type !== "history") return;
      if (document.getElementById("nh-" + frame.data.id)) return;
      show(frame.data, true);
      newest = frame.data.id;
      if (!frame.data.read_at) setUnread(unread + 1);
    };
    socket.onclose = function () {
      // Reconnect with since=newest: what arrived meanwhile comes as history.
      status.textContent = "reconnecting";
      setTimeout(function () { getToken().then(function (t) { token = t; connect(); }); }, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    };
  }

  getToken().then(function (t) {
    token = t;
    return Promise.all([api("GET", "/api/v1/inbox?limit=50"), api("GET", "/api/v1/inbox/unread-count")]);
  }).then(function (answers) {
    var messages = answers[0].data;
    messages.forEach(function (m) { show(m, false); });
    if (messages.length) newest = messages[0].id;
    setUnread(answers[1].data.unread);
    connect();
  }).catch(function (error) { status.textContent = "error: " + error.message; });
})();
