// The `digest preview` page: view toggles, pickers, image loading, test send and
// live reload. The server renders every view; this only switches between them and
// keeps the choice in the URL, so a reload (live or by hand) shows the same view.
(function () {
  "use strict";
  var state = JSON.parse(document.getElementById("state").textContent);
  var frame = document.getElementById("email");
  var panes = { html: frame, text: document.getElementById("text"),
                raw: document.getElementById("raw") };

  function byId(id) { return document.getElementById(id); }

  function remember(key, value) {
    var url = new URL(window.location.href);
    if (value === null || value === "") { url.searchParams.delete(key); }
    else { url.searchParams.set(key, value); }
    window.history.replaceState(null, "", url.pathname + url.search);
  }

  function press(selector, attr, chosen) {
    document.querySelectorAll(selector).forEach(function (b) {
      b.setAttribute(attr, String(b === chosen));
    });
  }

  document.querySelectorAll("[data-width]").forEach(function (button) {
    button.addEventListener("click", function () {
      if (frame) { frame.style.width = button.dataset.px + "px"; }
      press("[data-width]", "aria-pressed", button);
      remember("width", button.dataset.width === "desktop" ? null : button.dataset.width);
    });
  });

  document.querySelectorAll("[data-tab]").forEach(function (button) {
    button.addEventListener("click", function () {
      Object.keys(panes).forEach(function (key) {
        if (panes[key]) { panes[key].hidden = key !== button.dataset.tab; }
      });
      press("[data-tab]", "aria-selected", button);
      remember("tab", button.dataset.tab === "html" ? null : button.dataset.tab);
    });
  });

  byId("dark").addEventListener("click", function () {
    var dark = !document.documentElement.classList.contains("dark");
    document.documentElement.classList.toggle("dark", dark);
    byId("dark").setAttribute("aria-pressed", String(dark));
    if (frame) { frame.src = dark ? frame.dataset.dark : frame.dataset.light; }
    remember("dark", dark ? "1" : null);
  });

  function choose(key) {
    return function (ev) { remember(key, ev.target.value); window.location.reload(); };
  }
  byId("subscriber").addEventListener("change", choose("subscriber"));
  byId("day").addEventListener("change", choose("day"));

  // Images: the browser fetches each one as a mail client would; offline, a
  // failure is only reported. Ten seconds without an answer counts as failed.
  var images = document.querySelectorAll("#image-list li[data-src]");
  var pending = images.length;
  var failed = 0;
  function settle(li, how) {
    if (li.dataset.load !== "pending") { return; }
    li.dataset.load = how;
    li.title = how === "loaded" ? "loaded" : "did not load";
    if (how !== "loaded") { failed += 1; }
    pending -= 1;
    if (pending === 0) {
      var check = byId("check-images");
      var title = check.querySelector(".title");
      var detail = check.querySelector(".detail");
      if (failed) {
        if (check.dataset.level !== "error") { check.dataset.level = "warn"; }
        title.textContent = failed + " of " + images.length + " images failed to load";
        if (detail) { detail.textContent = "offline, moved or blocked: readers see the alt text"; }
      } else {
        if (detail) { detail.textContent = "all loaded"; }
      }
      check.dataset.loaded = "done";
    }
  }
  images.forEach(function (li) {
    var img = new Image();
    img.onload = function () { settle(li, "loaded"); };
    img.onerror = function () { settle(li, "failed"); };
    window.setTimeout(function () { settle(li, "failed"); }, 10000);
    img.src = li.dataset.src;
  });

  var form = byId("test-send");
  if (form) {
    var to = byId("test-to");
    try { to.value = window.localStorage.getItem("digest-preview-test-to") || ""; } catch (e) {}
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var result = byId("test-result");
      var button = byId("send-test");
      button.disabled = true;
      result.className = "";
      result.textContent = "sending…";
      try { window.localStorage.setItem("digest-preview-test-to", to.value); } catch (e) {}
      fetch("/send-test", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Preview-Token": state.token },
        body: JSON.stringify({ to: to.value, subscriber: state.subscriber, day: state.day })
      }).then(function (r) { return r.json(); })
        .then(function (answer) {
          result.className = answer.ok ? "sent" : "failed";
          result.textContent = answer.ok ? answer.detail : "not sent: " + answer.error;
        })
        .catch(function (err) {
          result.className = "failed";
          result.textContent = "not sent: " + err;
        })
        .finally(function () { button.disabled = false; });
    });
  }

  // The desk: each form posts one action to /desk with the page's token. A change
  // bumps the server's version; the page then reloads (below) and shows the email
  // as edited. What was focused, and what the server said, survive the reload so a
  // keyboard user stays where they were.
  var panel = byId("desk-panel");
  var KEEP = "digest-preview-desk";
  if (panel) {
    var by = byId("desk-by");
    try { by.value = window.localStorage.getItem("digest-preview-desk-by") || ""; } catch (e) {}
    var said = byId("desk-result");
    var kept = null;
    try { kept = JSON.parse(window.sessionStorage.getItem(KEEP) || "null"); } catch (e) {}
    if (kept) {
      try { window.sessionStorage.removeItem(KEEP); } catch (e) {}
      said.className = "done";
      said.textContent = kept.detail || "";
      var back = (kept.focus && byId(kept.focus)) ||
        (kept.story && document.querySelector("#story-" + kept.story + " button:not([disabled])")) ||
        byId("desk-title");
      if (back && back.closest("details")) { back.closest("details").open = true; }
      if (back === byId("desk-title")) { back.tabIndex = -1; }
      back.focus();
    }
    panel.addEventListener("submit", function (ev) {
      var form = ev.target;
      if (!form.dataset || !form.dataset.action) { return; }
      ev.preventDefault();
      var item = form.closest("[data-story]");
      var data = new FormData(form);
      var button = form.querySelector("button");
      var body = { action: form.dataset.action, story: item ? item.dataset.story : "",
                   text: data.get("text") || "", position: data.get("position") || "",
                   url: data.get("url") || "",
                   by: by.value };
      try { window.localStorage.setItem("digest-preview-desk-by", by.value); } catch (e) {}
      var focused = document.activeElement && document.activeElement.id;
      button.disabled = true;
      said.className = "";
      said.textContent = "saving…";
      fetch("/desk", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Preview-Token": state.token },
        body: JSON.stringify(body)
      }).then(function (r) { return r.json(); })
        .then(function (answer) {
          if (!answer.ok) {
            said.className = "failed";
            said.textContent = "refused: " + answer.error;
            button.disabled = false;
            return;
          }
          try {
            window.sessionStorage.setItem(KEEP, JSON.stringify(
              { focus: focused, story: body.story, detail: answer.detail }));
          } catch (e) {}
          said.className = "done";
          said.textContent = answer.detail + "; rebuilding…";
          // The event stream announces the new version and reloads the page; this
          // covers a stream that is down.
          if (answer.version !== state.version && live.dataset.state !== "connected") {
            window.location.reload();
          }
        })
        .catch(function (err) {
          said.className = "failed";
          said.textContent = "refused: " + err;
          button.disabled = false;
        });
    });
  }

  // Live reload: the server pushes its version whenever templates, config.toml,
  // subscribers or the store change (and once on connect, so nothing between this
  // page's render and the connection is missed; a restarted server differs too).
  var live = byId("live");
  var source = new EventSource("/events");
  source.addEventListener("open", function () {
    live.dataset.state = "connected";
    live.textContent = "live";
  });
  source.addEventListener("error", function () {
    live.dataset.state = "offline";
    live.textContent = "server stopped: showing the last copy";
  });
  source.addEventListener("version", function (ev) {
    if (ev.data !== state.version) {
      source.close();
      live.textContent = "reloading…";
      window.location.reload();
    }
  });
})();
