// Live job cards: one Server-Sent Events stream per page, open only while something runs,
// polling only while it is down; the elapsed time and the estimate from recent jobs; what
// just finished, said aloud. Builds on toasts.js (window.Playground).
(function () {
  "use strict";

  var P = window.Playground;
  var $ = P.$, $$ = P.$$;
  var POLL_MS = 3000;          // the fallback's pace while the live stream is down

  var live = { ids: "", element: null, open: false, pollTimer: null, state: "idle" };
  var known = {};  // job id → last status seen, to tell what just finished

  function runningIds() {
    var ids = $$(".job-card[data-running]").map(function (card) { return card.getAttribute("data-job-id"); });
    return ids.filter(function (id, i) { return ids.indexOf(id) === i; }).sort();
  }

  var setConnection = P.setConnection = function (state) {
    live.state = state;
    var box = document.getElementById("connection");
    if (!box) return;
    var texts = {
      idle: "",
      live: "Live",
      reconnecting: "Reconnecting… checking every few seconds",
      offline: "Offline: the server cannot be reached; your work is kept"
    };
    box.setAttribute("data-state", state);
    $(".connection-text", box).textContent = texts[state] || "";
  };

  function closeStream() {
    if (live.element) {
      htmx.remove(live.element);  // htmx's cleanup closes the EventSource
      live.element = null;
    }
    live.ids = "";
    live.open = false;
  }

  function openStream(ids) {
    closeStream();
    var source = document.createElement("div");
    source.hidden = true;
    source.setAttribute("sse-connect", "/events/jobs?ids=" + ids.join(","));
    source.setAttribute("sse-close", "done");
    var sink = document.createElement("div");
    // The message carries the changed cards marked out-of-band: htmx swaps each by id.
    sink.setAttribute("sse-swap", "jobs");
    sink.setAttribute("hx-swap", "none");
    source.appendChild(sink);
    document.body.appendChild(source);
    live.element = source;
    live.ids = ids.join(",");
    htmx.process(source);
  }

  // Open, keep or close the stream to match the running cards on the page.
  function syncLive() {
    noticeChanges();
    var ids = runningIds();
    if (!ids.length) {
      closeStream();
      stopPolling();
      setConnection(live.state === "offline" ? "offline" : "idle");
      return;
    }
    if (!window.EventSource) { startPolling(); return; }
    var watched = live.ids ? live.ids.split(",") : [];
    var missing = ids.some(function (id) { return watched.indexOf(id) < 0; });
    if (missing || !live.element) openStream(ids);
    if (live.state === "idle") setConnection(live.open ? "live" : "reconnecting");
  }

  function startPolling() {
    if (live.pollTimer) return;
    live.pollTimer = setInterval(pollOnce, POLL_MS);
  }

  function stopPolling() {
    if (live.pollTimer) clearInterval(live.pollTimer);
    live.pollTimer = null;
  }

  function pollOnce() {
    var ids = runningIds();
    if (!ids.length) { stopPolling(); syncLive(); return; }
    fetch("/jobs/cards?ids=" + ids.join(","), { headers: { "HX-Request": "true" } })
      .then(function (response) {
        if (!response.ok) throw new Error("status " + response.status);
        return response.text();
      })
      .then(function (html) {
        if (live.state === "offline") setConnection("reconnecting");
        htmx.swap(document.body, html, { swapStyle: "none" });
        syncLive();
      })
      .catch(function () { setConnection("offline"); });
  }

  document.addEventListener("htmx:sseOpen", function () {
    live.open = true;
    stopPolling();
    setConnection("live");
  });
  document.addEventListener("htmx:sseError", function () {
    live.open = false;
    if (runningIds().length) {
      if (live.state !== "offline") setConnection("reconnecting");
      startPolling();
    }
  });
  document.addEventListener("htmx:sseMessage", function () { syncLive(); });
  document.addEventListener("htmx:sseClose", function (event) {
    if (live.element && event.target === live.element) {
      live.element = null;
      live.ids = "";
      live.open = false;
    }
    setTimeout(syncLive, 0);
  });
  window.addEventListener("offline", function () { setConnection("offline"); });
  window.addEventListener("online", function () {
    setConnection("reconnecting");
    closeStream();
    syncLive();
  });

  // Say what changed since the last look: done, or failed (with a toast, a failure costs).
  function noticeChanges() {
    $$(".job-card").forEach(function (card) {
      var id = card.getAttribute("data-job-id");
      var status = card.getAttribute("data-status");
      var before = known[id];
      known[id] = status;
      if (!before || before === status || card.hasAttribute("data-running")) return;
      var title = "Job #" + id;
      if (status === "completed") {
        P.announce(title + " is done.");
      } else {
        var error = card.getAttribute("data-error") || "it did not finish";
        P.announce(title + " failed.");
        P.toast(title + ": " + error);
      }
    });
  }

  // --- Elapsed time and the estimate from recent jobs ----------------------------------

  var typical = {};
  function loadTypical() {
    var workspace = document.getElementById("workspace");
    if (!workspace) return;
    try { typical = JSON.parse(workspace.getAttribute("data-typical-seconds") || "{}"); } catch (e) { typical = {}; }
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60), rest = seconds % 60;
    return minutes + " min " + (rest < 10 ? "0" : "") + rest + " s";
  }

  var started = new WeakMap();  // card → [elapsed when rendered, performance.now() then]

  function tick() {
    var now = performance.now();
    $$(".job-card[data-running]").forEach(function (card) {
      if (!started.has(card)) started.set(card, [parseFloat(card.getAttribute("data-elapsed")) || 0, now]);
      var base = started.get(card);
      var elapsed = base[0] + (now - base[1]) / 1000;
      var label = $(".status-badge", card).textContent.trim();
      var estimate = typical[card.getAttribute("data-model")];
      var text = label + " · " + duration(elapsed);
      var progress = $("[data-progress]", card);
      if (estimate) {
        text += elapsed < estimate ? " of about " + duration(estimate) : " (usually about " + duration(estimate) + ")";
        if (progress) {
          progress.classList.add("is-estimated");
          progress.style.setProperty("--progress", Math.min(0.95, elapsed / estimate).toFixed(3));
        }
      }
      var timing = $("[data-timing]", card);
      if (timing) timing.textContent = text;
    });
  }

  P.syncLive = syncLive;

  htmx.onLoad(function (root) {
    if (root === document.body) loadTypical();
    syncLive();
    tick();
  });

  setInterval(tick, 1000);
})();
