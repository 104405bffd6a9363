// The chat links page: copy a link to the clipboard, and the print page's button.
// Loaded from a file so the CSP can forbid inline code.
(function () {
  "use strict";

  function copy(button) {
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) return;
    var done = function () {
      var label = button.textContent;
      button.textContent = button.getAttribute("data-copied") || label;
      window.setTimeout(function () { button.textContent = label; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () {
        input.select();
      });
    } else {
      // Plain http on a LAN: no clipboard API; select the text for Ctrl+C.
      input.focus();
      input.select();
      try { if (document.execCommand("copy")) done(); } catch (e) { /* selected is enough */ }
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof HTMLElement)) return;
    if (target.hasAttribute("data-copy")) copy(target);
    if (target.hasAttribute("data-print")) window.print();
  });
})();
