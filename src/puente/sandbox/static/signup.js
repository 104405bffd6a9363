// Posts the Embedded Signup session-info message to the page that opened the signup window,
// as Facebook's popup does, so integrators can test their listener.
document.addEventListener("htmx:load", function () {
  var node = document.getElementById("session-info");
  if (node && window.opener && !node.dataset.sent) {
    node.dataset.sent = "1";
    window.opener.postMessage(JSON.parse(node.dataset.sessionInfo), "*");
  }
});
