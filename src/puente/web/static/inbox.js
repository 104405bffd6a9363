// The inbox page: live updates over Server-Sent Events, the composer (send with a
// pending state, reply-to, reactions, snippets with "/", emoji, templates when the
// window is closed), private notes, the side panel's actions and
// keyboard shortcuts. Plain script from a file: the CSP forbids inline code.
(function () {
  "use strict";

  var root = null;
  var conversationId = "";
  var listTimer = null;
  var typingSentAt = 0;
  var typingTimer = null;
  var windowTimer = null;

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return String(Date.now()) + "-" + String(Math.random()).slice(2);
  }

  function toast(text) {
    var el = document.getElementById("toast");
    if (!el) return;
    el.textContent = text;
    el.hidden = false;
    window.clearTimeout(el._timer);
    el._timer = window.setTimeout(function () { el.hidden = true; }, 6000);
  }

  function errorText(html, status) {
    try {
      var body = JSON.parse(html);
      if (body && body.error && body.error.message) return body.error.message;
    } catch (e) { /* not JSON: an HTML fragment or page */ }
    var doc = new DOMParser().parseFromString(html, "text/html");
    var err = doc.querySelector("[data-testid=error]");
    return err ? err.textContent.trim() : "Error " + status;
  }

  function get(url) {
    return fetch(url, { headers: { "X-Inbox": "1", "Accept": "text/html" }, credentials: "same-origin" });
  }

  function post(url, data) {
    return fetch(url, {
      method: "POST",
      body: data,
      headers: { "X-Inbox": "1", "X-CSRF-Token": csrf(), "Accept": "text/html" },
      credentials: "same-origin",
    });
  }

  // Answers can arrive out of order (a status fetched at "delivered" landing after the one
  // fetched at "read"). Every fetch takes a ticket when it starts; what it brings is placed
  // only if nothing newer has been placed there already, so the newest state always wins.
  var tickets = 0;
  var placed = {};
  function ticket() { tickets += 1; return tickets; }
  function newest(key, t) {
    if ((placed[key] || 0) > t) return false;
    placed[key] = t;
    return true;
  }

  function fragment(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    return tpl.content.firstElementChild;
  }

  // -- the list --------------------------------------------------------------------------

  function refreshList() {
    window.clearTimeout(listTimer);
    listTimer = window.setTimeout(function () {
      var box = document.getElementById("inbox-list");
      if (!box) return;
      var query = root.getAttribute("data-list-query") || "";
      var url = "/inbox/list?" + query + (conversationId ? (query ? "&" : "") + "c=" + conversationId : "");
      var t = ticket();
      get(url).then(function (r) { return r.ok ? r.text() : null; }).then(function (html) {
        if (html !== null && newest("list", t)) box.innerHTML = html;
      });
    }, 150);
  }

  // -- the open conversation -------------------------------------------------------------

  function timeline() { return document.getElementById("timeline"); }

  function scrollDown() {
    var tl = timeline();
    if (tl) tl.scrollTop = tl.scrollHeight;
  }

  // A conversation opens at its newest message and stays there while pictures and videos
  // load above it (they grow from nothing to their height after the first scroll), until
  // the agent scrolls up to read; scrolling back to the end sticks to it again.
  // Only a person's scrolling (wheel, touch, keys, the scroll bar) decides whether the
  // timeline stays at its end. Scroll events the layout causes by itself (a picture
  // replaced by the catch-up fetch shrinks, then grows again; the browser clamps or
  // anchors the position) used to unstick it on a busy machine, leaving the newest
  // message out of view.
  var stuckToEnd = true;
  var personScrolling = false;
  // A new item arriving while the agent reads near the end brings them to it, and keeps
  // them there while its picture loads (the same rule as keepAtEnd's).
  function stickToEnd() { stuckToEnd = true; scrollDown(); }
  var personTimer = null;
  function keepAtEnd() {
    var tl = timeline();
    if (!tl) return;
    var byPerson = function () {
      personScrolling = true;
      clearTimeout(personTimer);
      personTimer = setTimeout(function () { personScrolling = false; }, 1000);
    };
    ["wheel", "touchmove", "mousedown", "keydown"].forEach(function (name) {
      tl.addEventListener(name, byPerson, { passive: true });
    });
    tl.addEventListener("scroll", function () {
      if (personScrolling) stuckToEnd = tl.scrollHeight - tl.scrollTop - tl.clientHeight < 40;
    });
    var follow = function () { if (stuckToEnd) scrollDown(); };
    tl.addEventListener("load", follow, true);
    tl.addEventListener("loadedmetadata", follow, true);
    if (window.ResizeObserver) new ResizeObserver(follow).observe(tl);
    // Items placed, replaced or changed (a picture swapped in by a later fetch) keep an
    // agent who is at the end there.
    if (window.MutationObserver) {
      new MutationObserver(follow).observe(tl, { childList: true, subtree: true });
    }
  }

  function placeItem(el, t) {
    var tl = timeline();
    if (!tl || !el) return;
    if (el.id && !newest(el.id, t)) return;
    var existing = el.id ? document.getElementById(el.id) : null;
    if (existing) {
      existing.replaceWith(el);
      return;
    }
    var nearBottom = tl.scrollHeight - tl.scrollTop - tl.clientHeight < 120;
    tl.appendChild(el);
    if (nearBottom) stickToEnd();
  }

  function loadItem(path) {
    var t = ticket();
    get("/inbox/c/" + conversationId + path)
      .then(function (r) { return r.status === 200 ? r.text() : null; })
      .then(function (html) { if (html) placeItem(fragment(html), t); });
  }

  function loadMessage(messageId) { loadItem("/m/" + messageId); }
  function loadNote(noteId) { loadItem("/notes/" + noteId); }
  function loadEvent(eventId) { loadItem("/events/" + eventId); }

  // The newest items of the open conversation, placed where they belong: anything that
  // happened before the stream was listening (or while it was down) shows without a reload.
  function catchUpTimeline() {
    var tl = timeline();
    // A page of older messages is left as it is: the newest do not belong there.
    if (!tl || !conversationId || /[?&]before=/.test(window.location.search)) return;
    var t = ticket();
    get("/inbox/c/" + conversationId + "/recent")
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var items = fragment(html);
        if (!items) return;
        var fresh = Array.prototype.slice.call(items.children);
        var nearBottom = tl.scrollHeight - tl.scrollTop - tl.clientHeight < 120;
        var added = false;
        fresh.forEach(function (el, i) {
          if (!el.id || !newest(el.id, t)) return;
          var existing = document.getElementById(el.id);
          if (existing) {
            // A workflow run the reader opened stays open.
            if (existing.tagName === "DETAILS" && existing.open) el.open = true;
            if (existing.outerHTML !== el.outerHTML) existing.replaceWith(el);
            return;
          }
          // Before the first later item already shown, else at the end.
          var after = null;
          for (var j = i + 1; j < fresh.length && !after; j++) {
            if (fresh[j].id) after = document.getElementById(fresh[j].id);
          }
          if (after && after.parentNode === tl) tl.insertBefore(el, after); else tl.appendChild(el);
          added = true;
        });
        if (added && nearBottom) stickToEnd();
      });
  }

  function refreshPanel() {
    var panel = document.getElementById("conv-panel");
    if (!panel || !conversationId) return;
    var t = ticket();
    get("/inbox/c/" + conversationId + "/panel")
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null && newest("panel", t)) panel.innerHTML = html; });
  }

  function refreshComposer(force) {
    var slot = document.getElementById("composer-slot");
    if (!slot || !conversationId) return;
    var box = slot.querySelector("textarea[name=body]");
    // Never throw away what an agent is typing unless the window state changed.
    var t = ticket();
    get("/inbox/c/" + conversationId + "/composer")
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null || !newest("composer", t)) return;
        var next = fragment(html);
        var current = slot.querySelector("#composer");
        if (!force && current && next && current.getAttribute("data-window-open") === next.getAttribute("data-window-open")) {
          current.setAttribute("data-window-expires", next.getAttribute("data-window-expires"));
          watchWindow();
          return;
        }
        if (box && box.value && next && next.getAttribute("data-window-open") === "1") return;
        slot.innerHTML = "";
        slot.appendChild(next);
        watchWindow();
      });
  }

  function watchWindow() {
    window.clearTimeout(windowTimer);
    var composer = document.getElementById("composer");
    if (!composer) return;
    var expires = composer.getAttribute("data-window-expires");
    if (!expires || composer.getAttribute("data-window-open") !== "1") return;
    var left = new Date(expires).getTime() - Date.now();
    if (left > 0 && left < 2147000000) {
      windowTimer = window.setTimeout(function () { refreshComposer(true); refreshPanel(); refreshList(); }, left + 500);
    }
  }

  function showTyping(name) {
    var el = document.getElementById("typing");
    if (!el) return;
    el.textContent = (root.getAttribute("data-text-typing") || "{name}…").replace("{name}", name);
    window.clearTimeout(typingTimer);
    typingTimer = window.setTimeout(function () { el.textContent = ""; }, 4000);
  }

  // -- live updates ----------------------------------------------------------------------

  function onEvent(event) {
    var kind = event.kind;
    var data = event.data || {};
    var cid = String(event.conversation_id || data.conversation_id || "");
    var here = conversationId && cid === conversationId;
    if (kind === "message.created" || kind === "message.status" || kind === "message.updated") {
      if (here && data.message_id) loadMessage(data.message_id);
      if (kind !== "message.status") refreshList();
      if (here && kind === "message.created" && data.direction === "inbound") refreshComposer(false);
    } else if (kind === "conversation.updated") {
      refreshList();
      // Being read changes only the list's marker: the side panel is left alone, so a
      // choice the agent is making there (an assignee, a label) is not thrown away.
      if (here && data.change !== "read") {
        refreshPanel();
        if (data.event_id) loadEvent(data.event_id);
        if (data.change === "status") refreshComposer(false);
      }
    } else if (kind === "note.created") {
      if (here && data.note_id) loadNote(data.note_id);
    } else if (kind === "agent.typing") {
      if (here && String(data.user_id) !== root.getAttribute("data-me")) showTyping(data.name || "");
    } else if (kind === "contact.updated" || kind === "contact.created") {
      if (conversationId) refreshPanel();
    }
  }

  function connect() {
    if (!window.EventSource) return;
    var source = new EventSource("/inbox/events");
    var opened = false;
    source.onopen = function () {
      root.setAttribute("data-live", "1");
      // Catch up on anything that happened before the stream listened: between the page
      // being drawn and this first opening, or while it was down.
      refreshList();
      catchUpTimeline();
      if (opened) refreshPanel();
      opened = true;
      document.dispatchEvent(new CustomEvent("puente:live"));
    };
    source.onmessage = function (msg) {
      var event;
      try { event = JSON.parse(msg.data); } catch (e) { return; /* a malformed event is skipped */ }
      onEvent(event);
      // notify.js (the bell, presence, browser notifications) listens on this one stream.
      document.dispatchEvent(new CustomEvent("puente:event", { detail: event }));
    };
    source.onerror = function () { root.setAttribute("data-live", "0"); };
  }

  // -- the composer --------------------------------------------------------------------------

  function formError(form, text) {
    var slot = form.querySelector(".composer-error");
    if (slot) {
      slot.textContent = text;
      slot.hidden = !text;
    } else if (text) {
      toast(text);
    }
  }

  function submitSend(form) {
    var button = form.querySelector("button[type=submit]");
    if (button && button.disabled) return;
    var keyField = form.querySelector("input[name=key]");
    if (keyField && !keyField.value) keyField.value = newKey();
    if (button) button.disabled = true;
    formError(form, "");
    var t = ticket();
    post(form.action, new FormData(form)).then(function (r) {
      return r.text().then(function (html) {
        return { ok: r.ok, status: r.status, html: html, refresh: r.headers.get("X-Inbox-Refresh") };
      });
    }).then(function (res) {
      if (!res.ok) {
        var text = errorText(res.html, res.status);
        formError(form, text);
        if (res.refresh === "composer") {
          // The window closed meanwhile: the template picker takes over.
          toast(text);
          refreshComposer(true);
          refreshPanel();
        }
        return;
      }
      placeItem(fragment(res.html), t);
      scrollDown();
      form.reset();
      if (keyField) keyField.value = "";
      clearReply(form);
      if (form.id === "template-form") refreshComposer(true);
      if (form.id === "question-form") questionStyle(form);
      if (form.id === "attach-form") attachmentProblem(form);
    }).catch(function () {
      // The request may or may not have arrived: keep the key so a retry cannot send twice.
      formError(form, "⚠");
    }).then(function () {
      if (button) button.disabled = false;
    });
  }

  // -- attachments and questions ----------------------------------------------------------------

  // Meta's limits, for instant feedback; the server checks again and its answer decides.
  function attachmentProblem(form) {
    var input = form.querySelector("input[type=file]");
    var file = input && input.files && input.files[0];
    if (!file) return "";
    var limits = JSON.parse(form.getAttribute("data-limits") || "{}");
    var dot = file.name.lastIndexOf(".");
    var ext = dot >= 0 ? file.name.slice(dot).toLowerCase() : "";
    var type = (limits.extensions || {})[ext] || (file.type || "").toLowerCase();
    var kinds = limits.kinds || {};
    var kind = null;
    Object.keys(kinds).forEach(function (name) {
      if (kinds[name].types.indexOf(type) >= 0) kind = name;
    });
    var caption = form.querySelector(".attach-caption");
    if (caption) caption.hidden = !!kind && !kinds[kind].caption;
    if (!kind) return (form.getAttribute("data-text-unsupported") || "").replace("{name}", file.name);
    if (file.size > kinds[kind].max) {
      var mb = kinds[kind].max >= 1048576 ? (kinds[kind].max / 1048576) + " MB" : (kinds[kind].max / 1024) + " KB";
      return (form.getAttribute("data-text-too-big") || "").replace("{name}", file.name).replace("{limit}", mb);
    }
    return "";
  }

  function questionStyle(form) {
    var list = !!form.querySelector("input[name=style][value=list]:checked");
    form.querySelectorAll("[data-list-only]").forEach(function (el) { el.hidden = !list; });
    form.querySelectorAll("input[name=option]").forEach(function (input) {
      input.maxLength = list ? 24 : 20;
    });
  }

  function clearReply(form) {
    var field = form.querySelector("input[name=reply_to]");
    if (field) field.value = "";
    var hint = form.querySelector(".replying");
    if (hint) hint.hidden = true;
  }

  function startReply(wamid, text) {
    var form = document.getElementById("send-form");
    if (!form) return;
    form.querySelector("input[name=reply_to]").value = wamid;
    var hint = form.querySelector(".replying");
    hint.querySelector("span").textContent = "↩ " + text;
    hint.hidden = false;
    form.querySelector("textarea").focus();
  }

  function react(messageId, emoji) {
    var data = new FormData();
    data.append("message_id", messageId);
    data.append("emoji", emoji);
    data.append("key", newKey());
    post("/inbox/c/" + conversationId + "/react", data).then(function (r) {
      if (!r.ok) r.text().then(function (html) { toast(errorText(html, r.status)); });
    });
  }

  function snippetMenu(box) {
    var form = box.form;
    var menu = form && form.querySelector(".snippet-menu");
    if (!menu) return;
    var match = /^\/([a-z0-9_\-]*)$/.exec(box.value);
    if (!match) { menu.hidden = true; return; }
    var typed = box.value;
    if (menu.getAttribute("data-dismissed") !== typed) menu.removeAttribute("data-dismissed");
    var t = ticket();
    get("/inbox/c/" + conversationId + "/snippets?prefix=" + encodeURIComponent(match[1]))
      .then(function (r) { return r.json(); })
      .then(function (body) {
        // Only the answer for what is typed now, and not once Escape closed the menu.
        if (box.value !== typed || !newest("snippets", t) || menu.getAttribute("data-dismissed") === typed) return;
        menu.innerHTML = "";
        (body.items || []).forEach(function (item, i) {
          var b = document.createElement("button");
          b.type = "button";
          b.className = "snippet-option" + (i === 0 ? " active" : "");
          b.textContent = "/" + item.shortcut + " — " + item.text.slice(0, 80);
          b.setAttribute("data-text", item.text);
          b.addEventListener("click", function () { pickSnippet(box, b); });
          menu.appendChild(b);
        });
        menu.hidden = !menu.firstChild;
      });
  }

  function pickSnippet(box, option) {
    var menu = option.parentElement;
    box.value = option.getAttribute("data-text") || "";
    menu.hidden = true;
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  // While the snippet menu is open: arrows move the highlight, Enter or Tab picks the
  // highlighted snippet, Escape closes the menu and leaves the text as typed.
  function snippetKey(event) {
    var box = event.target;
    var menu = box.form && box.form.querySelector(".snippet-menu");
    if (!menu || menu.hidden || !menu.firstChild) return false;
    var options = Array.prototype.slice.call(menu.querySelectorAll(".snippet-option"));
    var at = options.findIndex(function (o) { return o.classList.contains("active"); });
    var key = event.key;
    if (key === "ArrowDown" || key === "ArrowUp") {
      var next = Math.max(0, Math.min(options.length - 1, at + (key === "ArrowDown" ? 1 : -1)));
      options.forEach(function (o, i) { o.classList.toggle("active", i === next); });
      options[next].scrollIntoView({ block: "nearest" });
    } else if ((key === "Enter" || key === "Tab") && !event.shiftKey && !event.ctrlKey && !event.metaKey && !event.altKey) {
      pickSnippet(box, options[Math.max(0, at)]);
    } else if (key === "Escape") {
      menu.hidden = true;
      menu.setAttribute("data-dismissed", box.value);
    } else {
      return false;
    }
    event.preventDefault();
    return true;
  }

  function sendTyping() {
    var now = Date.now();
    if (now - typingSentAt < 3000 || !conversationId) return;
    typingSentAt = now;
    post("/inbox/c/" + conversationId + "/typing", new FormData());
  }

  function loadTemplateForm(select) {
    var slot = document.getElementById("template-form-slot");
    if (!slot) return;
    if (!select.value) { slot.innerHTML = ""; return; }
    get("/inbox/c/" + conversationId + "/template?template_id=" + select.value)
      .then(function (r) { return r.text(); })
      .then(function (html) { slot.innerHTML = html; });
  }

  var previewTimer = null;
  function refreshTemplatePreview(form) {
    window.clearTimeout(previewTimer);
    previewTimer = window.setTimeout(function () {
      var params = new URLSearchParams();
      form.querySelectorAll("input[data-testid=template-var]").forEach(function (input) {
        params.append(input.name, input.value);
      });
      get(form.getAttribute("data-preview-url") + "&" + params.toString())
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var box = document.getElementById("template-preview");
          if (box) box.innerHTML = html;
        });
    }, 150);
  }

  function submitAction(form) {
    post(form.action, new FormData(form)).then(function (r) {
      if (!r.ok) {
        return r.text().then(function (html) {
          toast(errorText(html, r.status));
          refreshPanel();
        });
      }
      refreshPanel();
      refreshList();
      if (/\/(close|reopen|snooze)$/.test(form.action)) refreshComposer(false);
    });
  }

  function submitNote(form) {
    var button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    var t = ticket();
    post(form.action, new FormData(form)).then(function (r) {
      return r.text().then(function (html) { return { ok: r.ok, status: r.status, html: html }; });
    }).then(function (res) {
      if (!res.ok) { formError(form, errorText(res.html, res.status)); return; }
      formError(form, "");
      placeItem(fragment(res.html), t);
      scrollDown();
      form.reset();
    }).then(function () { if (button) button.disabled = false; });
  }

  function switchComposer(tab) {
    document.querySelectorAll("[data-composer-tab]").forEach(function (b) {
      b.classList.toggle("active", b.getAttribute("data-composer-tab") === tab);
    });
    document.querySelectorAll("[data-composer-pane]").forEach(function (p) {
      p.hidden = p.getAttribute("data-composer-pane") !== tab;
    });
    var box = document.querySelector("[data-composer-pane=" + tab + "] textarea");
    if (box) box.focus();
  }

  // -- keyboard shortcuts ------------------------------------------------------------------

  function moveSelection(step) {
    var rows = Array.prototype.slice.call(document.querySelectorAll(".conv-row a.conv-link"));
    if (!rows.length) return;
    var current = rows.findIndex(function (a) { return a.parentElement.classList.contains("current"); });
    var next = rows[Math.max(0, Math.min(rows.length - 1, current + step))];
    if (next) window.location.href = next.href;
  }

  function onKey(event) {
    var target = event.target;
    var typing = target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement;
    if (typing) {
      if (target instanceof HTMLTextAreaElement && target.form && target.form.id === "send-form" && snippetKey(event)) return;
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target.form) {
        event.preventDefault();
        target.form.requestSubmit();
      } else if (event.key === "Escape") {
        target.blur();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var key = event.key;
    if (key === "j") moveSelection(1);
    else if (key === "k") moveSelection(-1);
    else if (key === "r") { event.preventDefault(); switchComposer("reply"); }
    else if (key === "n") { event.preventDefault(); switchComposer("note"); }
    else if (key === "e") { var close = document.querySelector("[data-testid=close]"); if (close) close.focus(); }
    else if (key === "a") { var me = document.getElementById("assign-me-form"); if (me) submitAction(me); }
    else if (key === "/") { event.preventDefault(); var s = document.getElementById("list-search"); if (s) s.focus(); }
    else if (key === "?") {
      var help = document.querySelector(".empty-view .small");
      toast(help ? help.textContent : "j k r n e a /");
    }
  }

  // -- wiring ----------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", function () {
    root = document.getElementById("inbox");
    if (!root) return;
    conversationId = root.getAttribute("data-conversation-id") || "";
    scrollDown();
    keepAtEnd();
    watchWindow();
    var list = document.getElementById("inbox-list");
    if (list && list.getAttribute("data-lazy") === "1") refreshList();
    connect();

    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement)) return;
      if (form.id === "send-form" || form.id === "template-form" || form.id === "question-form") { event.preventDefault(); submitSend(form); }
      else if (form.id === "attach-form") {
        event.preventDefault();
        var problem = attachmentProblem(form);
        if (problem) formError(form, problem);
        else submitSend(form);
      }
      else if (form.id === "note-form") { event.preventDefault(); submitNote(form); }
      else if (form.classList.contains("js-action")) { event.preventDefault(); submitAction(form); }
    });

    document.addEventListener("click", function (event) {
      var el = event.target instanceof Element ? event.target.closest("button") : null;
      if (!el) return;
      if (el.hasAttribute("data-reply")) startReply(el.getAttribute("data-reply"), el.getAttribute("data-reply-text") || "");
      else if (el.hasAttribute("data-react")) react(el.getAttribute("data-react"), el.getAttribute("data-emoji"));
      else if (el.hasAttribute("data-cancel-reply")) clearReply(el.form);
      else if (el.hasAttribute("data-composer-tab")) switchComposer(el.getAttribute("data-composer-tab"));
      else if (el.hasAttribute("data-emoji-insert")) {
        var box = el.form && el.form.querySelector("textarea");
        if (box) {
          var at = box.selectionStart || box.value.length;
          box.value = box.value.slice(0, at) + el.getAttribute("data-emoji-insert") + box.value.slice(at);
          box.focus();
        }
      }
    });

    document.addEventListener("input", function (event) {
      var t = event.target;
      if (t instanceof HTMLTextAreaElement && t.name === "body" && t.form && t.form.id === "send-form") {
        snippetMenu(t);
        sendTyping();
      } else if (t instanceof HTMLInputElement && t.form && t.form.id === "template-form") {
        refreshTemplatePreview(t.form);
      }
    });

    document.addEventListener("change", function (event) {
      var t = event.target;
      if (t instanceof HTMLSelectElement && t.id === "template-select") loadTemplateForm(t);
      else if (t instanceof HTMLInputElement && t.type === "file" && t.form && t.form.id === "attach-form") formError(t.form, attachmentProblem(t.form));
      else if (t instanceof HTMLInputElement && t.name === "style" && t.form && t.form.id === "question-form") questionStyle(t.form);
      else if (t instanceof HTMLSelectElement && t.classList.contains("autofilter") && t.form) t.form.submit();
    });

    // One of the composer's extras open at a time keeps the conversation in view.
    document.addEventListener("toggle", function (event) {
      var t = event.target;
      if (!(t instanceof HTMLDetailsElement) || !t.open || !t.classList.contains("composer-extra")) return;
      document.querySelectorAll("details.composer-extra[open]").forEach(function (d) {
        if (d !== t) d.open = false;
      });
    }, true);

    // The filter panel stays open after a filter applied from it (the page reloads), and
    // only then: the form says so while the panel is open.
    document.addEventListener("toggle", function (event) {
      var t = event.target;
      if (!(t instanceof HTMLDetailsElement) || !t.classList.contains("filter-more")) return;
      var form = t.closest("form");
      var marker = form && form.querySelector("input[name=filters]");
      if (marker) marker.disabled = !t.open;
    }, true);

    document.addEventListener("keydown", onKey);
  });
})();
