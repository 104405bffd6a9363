// Tells Puente that its person is at the keyboard, so an agent who goes idle turns away
// by themselves and is online again when they come back (accounts/presence.py). Cheap:
// at most one small POST a minute while they work, and one at once when they return
// after a minute or more without touching the page. Open tabs themselves are known from
// their event stream; closing the last one makes the person offline.
(function () {
  "use strict";

  var EVERY = 60000;
  var lastSent = 0;
  var lastActivity = 0;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function report(now) {
    lastSent = now;
    window.fetch("/me/active", {
      method: "POST",
      headers: { "X-CSRF-Token": csrfToken() },
      credentials: "same-origin",
      keepalive: true,
    }).catch(function () { lastSent = 0; /* offline for a moment: the next move tries again */ });
  }

  function activity() {
    var now = Date.now();
    var returning = now - lastActivity >= EVERY;
    lastActivity = now;
    if (returning || now - lastSent >= EVERY) report(now);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!document.getElementById("notif-bell")) return; // members of a workspace only
    ["pointerdown", "pointermove", "keydown", "wheel", "touchstart", "scroll"].forEach(function (name) {
      window.addEventListener(name, activity, { capture: true, passive: true });
    });
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) activity();
    });
    activity(); // opening a page is activity
  });
})();
