// Meta's Embedded Signup on the "Add a number" page (real Meta mode): loads Facebook's SDK,
// launches the signup with the coexistence feature type when the method asks for it, waits
// for both the code (FB.login's answer) and the session-info message (WABA and number ids),
// then posts them to Puente, which exchanges the code within its 30 seconds.
(function () {
  "use strict";
  var form, status, code = null, info = null, sent = false;

  function say(text) { if (status) status.textContent = text; }

  function submitWhenReady() {
    if (sent || !code || !info) return;
    sent = true;
    var data = info.data || {};
    var post = document.createElement("form");
    post.method = "post";
    post.action = "/channels/onboard/finish";
    var fields = {
      csrf_token: form.querySelector("input[name=csrf_token]").value,
      method: form.dataset.method,
      code: code,
      waba_id: data.waba_id || "",
      phone_number_id: data.phone_number_id || "",
      import_history: (form.querySelector("input[name=import_history]") || {}).checked ? "yes" : "no"
    };
    Object.keys(fields).forEach(function (name) {
      var input = document.createElement("input");
      input.type = "hidden"; input.name = name; input.value = fields[name];
      post.appendChild(input);
    });
    document.body.appendChild(post);
    say("Connecting the number…");
    post.submit();
  }

  window.addEventListener("message", function (event) {
    if (!/^https:\/\/([a-z0-9-]+\.)*facebook\.com$/.test(event.origin)) return;
    var payload = event.data;
    try { if (typeof payload === "string") payload = JSON.parse(payload); } catch (e) { return; }
    if (!payload || payload.type !== "WA_EMBEDDED_SIGNUP") return;
    if (payload.event === "FINISH" || payload.event === "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING") {
      info = payload;
      submitWhenReady();
    } else if (payload.event === "CANCEL" || payload.event === "ERROR") {
      say("The signup was cancelled or failed at Facebook. You can start again.");
    }
  });

  function launch() {
    var extras = { setup: {}, sessionInfoVersion: "3" };
    if (form.dataset.method === "coexistence") extras.featureType = "whatsapp_business_app_onboarding";
    window.FB.login(function (response) {
      if (response && response.authResponse && response.authResponse.code) {
        code = response.authResponse.code;
        submitWhenReady();
      } else {
        say("The signup did not finish. You can start again.");
      }
    }, {
      config_id: form.dataset.configId,
      response_type: "code",
      override_default_response_type: true,
      extras: extras
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    form = document.getElementById("signup-form");
    status = document.getElementById("fb-status");
    var button = document.getElementById("fb-signup");
    if (!form || !button) return;
    window.fbAsyncInit = function () {
      window.FB.init({ appId: form.dataset.appId, autoLogAppEvents: true, xfbml: false, version: form.dataset.apiVersion });
    };
    var sdk = document.createElement("script");
    sdk.src = "https://connect.facebook.net/en_US/sdk.js";
    sdk.async = true; sdk.defer = true; sdk.crossOrigin = "anonymous";
    document.head.appendChild(sdk);
    button.addEventListener("click", function () {
      if (!form.reportValidity()) return;
      if (!window.FB) { say("Facebook's SDK did not load; check the connection."); return; }
      launch();
    });
  });
})();
