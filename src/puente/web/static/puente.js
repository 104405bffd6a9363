// Puente's own script: CSRF header for htmx, auto-submitting selects, confirmations,
// and a toast for failed htmx requests. Loaded from a file so the CSP can forbid inline code.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function setHxHeaders() {
    // htmx sends these headers with every request it makes from inside <body>.
    document.body.setAttribute("hx-headers", JSON.stringify({ "X-CSRF-Token": csrfToken() }));
  }

  function showToast(text) {
    var toast = document.getElementById("toast");
    if (!toast) return;
    toast.textContent = text;
    toast.hidden = false;
    window.setTimeout(function () { toast.hidden = true; }, 5000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    setHxHeaders();

    document.addEventListener("change", function (event) {
      var target = event.target;
      if (target instanceof HTMLSelectElement && target.classList.contains("autosubmit") && target.form) {
        target.form.submit();
      }
    });

    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (form instanceof HTMLFormElement && form.classList.contains("confirm")) {
        if (!window.confirm(form.getAttribute("data-confirm") || "Are you sure?")) {
          event.preventDefault();
        }
      }
    });

    document.body.addEventListener("htmx:configRequest", function (event) {
      event.detail.headers["X-CSRF-Token"] = csrfToken();
    });

    document.body.addEventListener("htmx:responseError", function (event) {
      var xhr = event.detail.xhr;
      var message = "Error " + xhr.status;
      try {
        var body = JSON.parse(xhr.responseText);
        if (body && body.error && body.error.message) message = body.error.message;
      } catch (e) {
        var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
        var err = doc.querySelector("[data-testid=error]");
        if (err) message = err.textContent;
      }
      showToast(message);
    });
  });
})();
