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
    var scope = root.querySelectorAll ? root : document;
    Array.prototype.forEach.call(scope.querySelectorAll(".grid-axis"), syncAxis);
    if (!window.EventSource && stream() && running() && !pollTimer) pollTimer = setInterval(pollOnce, POLL_MS);
  });
})();
