// The webhooks pages: a secret's copy button and the form's check all / uncheck all.
// A file of its own so that the CSP can forbid inline scripts.
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http on a local network has no clipboard API: select and copy the old way.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    try {
      document.execCommand("copy");
    } finally {
      document.body.removeChild(area);
    }
    return Promise.resolve();
  }

  function setAll(form, name, checked) {
    form.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (box) {
      box.checked = checked;
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("button") : null;
    if (!button) return;
    var copyId = button.getAttribute("data-copy");
    if (copyId) {
      var source = document.getElementById(copyId);
      if (!source) return;
      var label = button.textContent;
      copyText(source.textContent.trim()).then(function () {
        button.textContent = button.getAttribute("data-copied") || label;
        window.setTimeout(function () { button.textContent = label; }, 2000);
      });
      return;
    }
    var all = button.getAttribute("data-check-all");
    var none = button.getAttribute("data-check-none");
    if ((all || none) && button.form) {
      setAll(button.form, all || none, Boolean(all));
    }
  });
})();
