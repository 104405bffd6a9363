// The dashboard's live figures. notify.js keeps the inbox's event stream open on every
// page and passes each event on as "puente:event"; when one says a conversation opened,
// closed or was assigned, a customer wrote, or someone's availability changed, the
// figures are asked for again (htmx, the "dashboard:refresh" trigger of #dash-figures),
// at most once a second and always after the last of a burst. htmx also redraws them
// every minute, for the waiting times and in case the stream is down.
(function () {
  "use strict";

  var PAUSE = 1000;
  var pending = null;
  // Changes that move none of the figures.
  var QUIET = { read: true, unread: true, labels: true, bot: true };

  function refresh() {
    pending = null;
    var figures = document.getElementById("dash-figures");
    if (figures && window.htmx) window.htmx.trigger(figures, "dashboard:refresh");
  }

  function soon() {
    if (pending === null) pending = window.setTimeout(refresh, PAUSE);
  }

  function matters(event) {
    var data = event.data || {};
    if (event.kind === "conversation.updated") return !QUIET[data.change];
    if (event.kind === "message.created") return data.direction === "inbound";
    return event.kind === "presence.changed";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("dashboard");
    if (!root) return;
    document.addEventListener("puente:event", function (e) {
      if (matters(e.detail || {})) soon();
    });
    // The stream (re)opened: catch up on what happened while it was not listening.
    document.addEventListener("puente:live", function () {
      root.setAttribute("data-live", "1");
      soon();
    });
    document.addEventListener("puente:down", function () { root.setAttribute("data-live", "0"); });
  });
})();
