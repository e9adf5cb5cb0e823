// The grid builder and the grid page, on top of htmx. Both work without it: the form
// posts, the page shows what is done when loaded. No eval, no inline script.
(function () {
  "use strict";

  var POLL_MS = 3000;  // the fallback's pace when the live stream cannot be held

  // --- The builder: each axis shows the input its parameter takes ----------------------

  function syncAxis(fieldset) {
    var select = fieldset.querySelector("[data-axis-param]");
    if (!select) return;
    var presets = fieldset.querySelector("[data-axis-presets]");
    var text = fieldset.querySelector("[data-axis-text]");
    var hint = fieldset.querySelector("[data-axis-hint]");
    var isPreset = select.value === "preset";
    if (presets) presets.hidden = !isPreset;
    if (text) text.hidden = isPreset || !select.value;
    var chosen = select.options[select.selectedIndex];
    if (hint) hint.textContent = (chosen && chosen.getAttribute("data-hint")) || "separated by commas";
  }

  document.addEventListener("change", function (event) {
    var fieldset = event.target.closest && event.target.closest(".grid-axis");
    if (fieldset && event.target.hasAttribute("data-axis-param")) syncAxis(fieldset);
  });

  // --- The builder: Make waits for the plan of what the form now says, then asks ---------

  function builder() { return document.getElementById("grid-form"); }

  // Every change (typed, pasted, picked) is planned again; until the plan is back, Make
  // would make something nobody has seen the cost of.
  function planPending(form, pending) {
    var make = form.querySelector("[data-grid-make]");
    var box = document.getElementById("grid-plan");
    if (make) make.disabled = pending;
    if (box) box.setAttribute("aria-busy", pending ? "true" : "false");
  }

  // What the form said when the plan on the page was made: a change that leaves it the same
  // (a field losing focus after its input was planned) waits for nothing.
  var planned = null;
  function said(form) { return new URLSearchParams(new FormData(form)).toString(); }

  ["input", "change"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      var form = builder();
      if (!form || !form.contains(event.target)) return;
      if (planned === null) planned = said(form);
      if (said(form) !== planned) planPending(form, true);
    });
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = builder();
    if (form && event.detail.elt && event.detail.elt.id === "grid-plan") {
      event.detail.elt.setAttribute("data-asked", said(form));
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = builder();
    var box = event.detail.elt;
    if (!form || !box || box.id !== "grid-plan" || !event.detail.successful) return;
    planned = box.getAttribute("data-asked");
    // A later change is on its way to be planned; until then, still waiting.
    if (planned === said(form)) planPending(form, false);
  });

  // Make asks first, as try-all does: the plan's jobs and cost, focus on Cancel. The
  // dialog's own button submits the form (its `form` attribute), and that one goes through.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || form.id !== "grid-form") return;
    var dialog = document.getElementById("grid-confirm");
    var confirmed = event.submitter && event.submitter.hasAttribute("data-grid-confirmed");
    if (confirmed) { if (dialog && dialog.open) dialog.close(); return; }
    var plan = document.querySelector("#grid-plan .grid-plan");
    var jobs = plan ? Number(plan.getAttribute("data-jobs")) : 0;
    // Nothing to ask about: the server says what is wrong, field by field.
    if (!dialog || !dialog.showModal || !jobs) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    var images = Number(plan.getAttribute("data-images")) || jobs;
    dialog.querySelector("[data-grid-confirm-text]").textContent =
      "This sends " + jobs + " job" + (jobs === 1 ? "" : "s") + " to PixelDojo, one after the other, for " +
      images + " image" + (images === 1 ? "" : "s") + ". You can stop it while it runs.";
    dialog.querySelector("[data-grid-confirm-cost]").textContent = plan.getAttribute("data-cost-text");
    dialog.querySelector("[data-grid-confirmed]").textContent = "Make " + jobs + " job" + (jobs === 1 ? "" : "s");
    dialog.showModal();
    dialog.querySelector("[data-autofocus]").focus();
  }, true);

  // --- The grid page: polling while the stream is down --------------------------------

  var pollTimer = null;

  function stream() { return document.querySelector("[data-grid-stream]"); }

  function running() { return document.querySelectorAll(".grid-cell[data-running]").length > 0; }

  function pollOnce() {
    var source = stream();
    if (!source || !running()) { stopPolling(); return; }
    fetch("/grids/" + source.getAttribute("data-grid-stream") + "/cells", { headers: { "HX-Request": "true" } })
      .then(function (response) {
        if (!response.ok) throw new Error("status " + response.status);
        return response.text();
      })
      .then(function (html) { htmx.swap(document.body, html, { swapStyle: "none" }); })
      .catch(function () { /* the header already says the server cannot be reached */ });
  }

  function stopPolling() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
  }

  document.addEventListener("htmx:sseError", function (event) {
    if (event.target !== stream() || pollTimer || !running()) return;
    pollTimer = setInterval(pollOnce, POLL_MS);
  });
  document.addEventListener("htmx:sseOpen", function (event) {
    if (event.target === stream()) stopPolling();
  });

  htmx.onLoad(function (root) {
    var form = builder();
    if (form && (root === document.body || root === form)) planned = said(form);
    var scope = root.querySelectorAll ? root : document;
    Array.prototype.forEach.call(scope.querySelectorAll(".grid-axis"), syncAxis);
    if (!window.EventSource && stream() && running() && !pollTimer) pollTimer = setInterval(pollOnce, POLL_MS);
  });
})();
