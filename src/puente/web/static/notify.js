// The top bar's notification bell (unread counter, list, mark read), browser (system)
// notifications once the agent allowed them, and colleagues' availability updated live.
// On the inbox page it listens to inbox.js's event stream; elsewhere it opens its own.
(function () {
  "use strict";

  var bell = null;

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function text(name, fallback) {
    return (bell && bell.getAttribute("data-text-" + name)) || fallback;
  }

  // -- the counter and the list ------------------------------------------------------------

  // Events carry the count as of their commit; a fetch that started before an event came
  // may answer after it with an older count, so it applies only if no event came since
  // and no later fetch has answered.
  var events = 0;
  var fetches = 0;
  var answered = 0;

  function showCount(n) {
    var badge = document.getElementById("notif-count");
    if (!badge || typeof n !== "number") return;
    badge.textContent = String(n);
    badge.hidden = n <= 0;
  }

  function setCount(n) {
    events += 1;
    showCount(n);
  }

  function refreshCount() {
    fetches += 1;
    var mine = fetches;
    var seen = events;
    fetch("/inbox/notifications/count", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body || events !== seen || mine < answered) return;
        answered = mine;
        showCount(body.unread);
      })
      .catch(function () { /* the next event or reconnect tries again */ });
  }

  function panel() { return document.getElementById("notif-panel"); }

  function loadPanel() {
    var box = panel();
    if (!box) return;
    fetch("/inbox/notifications", { credentials: "same-origin", headers: { "X-Inbox": "1", "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        box.innerHTML = html;
        showPermissionButtons();
      });
  }

  function togglePanel() {
    var box = panel();
    var toggle = document.getElementById("notif-toggle");
    if (!box) return;
    if (!box.hidden) {
      box.hidden = true;
      if (toggle) toggle.setAttribute("aria-expanded", "false");
      return;
    }
    box.hidden = false;
    if (toggle) toggle.setAttribute("aria-expanded", "true");
    loadPanel();
  }

  function submitRead(form) {
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "X-Inbox": "1", "X-CSRF-Token": csrf() },
    }).then(function () { refreshCount(); loadPanel(); });
  }

  function markRead(id) {
    fetch("/inbox/notifications/" + id + "/read", {
      method: "POST",
      body: new FormData(),
      credentials: "same-origin",
      headers: { "X-Inbox": "1", "X-CSRF-Token": csrf() },
    }).then(refreshCount);
  }

  // -- browser notifications ---------------------------------------------------------------

  function browserAllowed() {
    return "Notification" in window && Notification.permission === "granted";
  }

  function showPermissionButtons() {
    var supported = "Notification" in window;
    document.querySelectorAll("[data-enable-browser-notifications]").forEach(function (b) {
      // Asked only when the agent clicks: browsers block (and users dislike) asking on load.
      b.hidden = !supported || Notification.permission !== "default";
    });
    document.querySelectorAll("[data-browser-notifications-state]").forEach(function (el) {
      if (!supported) el.textContent = text("unsupported", "");
      else if (Notification.permission === "granted") el.textContent = text("allowed", "");
      else if (Notification.permission === "denied") el.textContent = text("blocked", "");
      else el.textContent = "";
    });
  }

  function askPermission() {
    if (!("Notification" in window)) return;
    Notification.requestPermission().then(showPermissionButtons, showPermissionButtons);
  }

  function looking(cid) {
    var inbox = document.getElementById("inbox");
    return !document.hidden && inbox && cid && inbox.getAttribute("data-conversation-id") === String(cid);
  }

  function showSystemNotification(data) {
    var cid = data.conversation_id;
    // The conversation on screen needs no interruption.
    if (!browserAllowed() || looking(cid)) return;
    var title = text(data.notification_kind, "Puente");
    var n = new Notification(title, { body: data.text || "", tag: "puente-" + data.notification_kind + "-" + (cid || "") });
    n.onclick = function () {
      window.focus();
      if (cid) window.location.href = "/inbox/c/" + cid;
      n.close();
    };
  }

  function toast(message) {
    var el = document.getElementById("toast");
    if (!el || !message) return;
    el.textContent = message;
    el.hidden = false;
    window.clearTimeout(el._notifyTimer);
    el._notifyTimer = window.setTimeout(function () { el.hidden = true; }, 6000);
  }

  // -- presence --------------------------------------------------------------------------------

  function showPresence(userId, availability) {
    var label = text(availability, availability);
    document.querySelectorAll('[data-presence-user="' + userId + '"]').forEach(function (el) {
      el.setAttribute("data-presence", availability);
      if (el.tagName === "OPTION") {
        var name = el.getAttribute("data-name") || "";
        el.textContent = availability === "online" ? name : name + " (" + label + ")";
      } else {
        var dot = el.querySelector(".dot");
        if (dot) dot.className = "dot dot-" + availability;
        var state = el.querySelector("[data-presence-label]");
        if (state) state.textContent = label;
      }
    });
  }

  // -- events --------------------------------------------------------------------------------

  function onEvent(event) {
    var data = event.data || {};
    if (event.kind === "notification.created") {
      if (data.in_app && looking(data.conversation_id) && data.notification_id) {
        // The agent is reading that very conversation: nothing to catch up on later.
        markRead(data.notification_id);
      } else if (data.in_app) {
        setCount(data.unread);
        var box = panel();
        if (box && !box.hidden) loadPanel();
        toast(text(data.notification_kind, "") + (data.text ? " · " + data.text : ""));
      }
      if (data.browser) showSystemNotification(data);
    } else if (event.kind === "notification.read") {
      setCount(data.unread);
    } else if (event.kind === "presence.changed") {
      showPresence(data.user_id, data.availability);
    }
  }

  // Outside the inbox this is the page's one stream: its events go on to the page's own
  // script as on the inbox (dashboard.js listens), so a tab never opens a second one.
  function ownStream() {
    if (!window.EventSource) return;
    var source = new EventSource("/inbox/events");
    source.onopen = function () {
      bell.setAttribute("data-live", "1");
      refreshCount();
      document.dispatchEvent(new CustomEvent("puente:live"));
    };
    source.onmessage = function (msg) {
      var event;
      try { event = JSON.parse(msg.data); } catch (e) { return; /* a malformed event is skipped */ }
      onEvent(event);
      document.dispatchEvent(new CustomEvent("puente:event", { detail: event }));
    };
    source.onerror = function () {
      bell.setAttribute("data-live", "0");
      document.dispatchEvent(new CustomEvent("puente:down"));
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    bell = document.getElementById("notif-bell");
    if (!bell) return;
    showPermissionButtons();
    if (document.getElementById("inbox")) {
      document.addEventListener("puente:event", function (e) { onEvent(e.detail || {}); });
      document.addEventListener("puente:live", function () { bell.setAttribute("data-live", "1"); refreshCount(); });
    } else {
      ownStream();
    }
    refreshCount();

    document.addEventListener("click", function (event) {
      var el = event.target instanceof Element ? event.target.closest("button") : null;
      if (!el) return;
      if (el.id === "notif-toggle") togglePanel();
      else if (el.hasAttribute("data-enable-browser-notifications")) askPermission();
    });

    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (form instanceof HTMLFormElement && form.classList.contains("notif-action")) {
        event.preventDefault();
        submitRead(form);
      }
    });
  });
})();
