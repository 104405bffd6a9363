// The workflow builder: when a step's kind (or the trigger's) changes, show the fields
// that kind uses and hide the others, disabling them so that they post nothing. The
// server reads only the fields of each kind anyway; without scripts, saving shows them.
(function () {
  "use strict";

  function sync(container, kind, attribute) {
    container.querySelectorAll("[" + attribute + "]").forEach(function (element) {
      var on = element.getAttribute(attribute).split(" ").indexOf(kind) !== -1;
      element.hidden = !on;
      if (element.tagName === "FIELDSET") element.disabled = !on;
    });
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!(target instanceof HTMLElement)) return;
    if (target.matches("select.wf-step-type")) {
      sync(target.closest(".wf-step"), target.value, "data-types");
    } else if (target.matches("select.wf-trigger-type")) {
      sync(target.closest(".wf-trigger"), target.value, "data-trigger-types");
    } else if (target.matches("input.wf-match")) {
      var keywords = target.closest("fieldset").querySelector(".wf-keywords");
      if (keywords) keywords.hidden = target.value !== "keyword";
    }
  });
})();
