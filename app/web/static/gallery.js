// The gallery's enhancements: the selection bar, and tiles that follow each change (the
// lightbox is static/lightbox.js). Without this file every link and form still works, only
// less smoothly.
(function () {
  "use strict";

  // Selection: shown only while images are ticked, with how many; buttons enabled once
  // enough are ticked. The page keeps room below the grid for the bar (see gallery.css).
  function syncSelection() {
    var bar = document.querySelector("[data-selection]");
    if (!bar) return;
    bar.setAttribute("data-enhanced", "true");
    var count = document.querySelectorAll("input.tile-select:checked").length;
    bar.classList.toggle("has-selection", count > 0);
    document.body.classList.toggle("has-selection", count > 0);
    var label = bar.querySelector("[data-selection-count]");
    if (label) {
      if (!label.hasAttribute("data-idle")) label.setAttribute("data-idle", label.textContent);
      label.textContent = count ? count + " selected" : label.getAttribute("data-idle");
    }
    bar.querySelectorAll("[data-min]").forEach(function (button) {
      button.disabled = count < Number(button.getAttribute("data-min"));
    });
    if (count) document.body.style.setProperty("--selection-bar-height", bar.offsetHeight + "px");
  }
  document.addEventListener("change", function (event) {
    if (event.target.classList && event.target.classList.contains("tile-select")) syncSelection();
  });
  document.addEventListener("click", function (event) {
    if (!(event.target.closest && event.target.closest("[data-selection-clear]"))) return;
    document.querySelectorAll("input.tile-select:checked").forEach(function (box) { box.checked = false; });
    syncSelection();
  });
  document.addEventListener("htmx:afterSettle", syncSelection);
  document.addEventListener("DOMContentLoaded", syncSelection);

  // What each view no longer shows after a change, and what comes back with its Undo.
  var LEAVES = {
    gallery: { hide: ["trash", "purge"], show: ["restore"] },
    favourites: { hide: ["trash", "purge", "unfavourite"], show: ["restore", "favourite"] },
    board: { hide: ["trash", "purge", "uncollect"], show: ["restore", "collect"] },
    trash: { hide: ["restore", "purge"], show: ["trash"] }
  };
  document.addEventListener("images-changed", function (event) {
    var detail = event.detail || {};
    var ids = (detail.ids || []).map(String);
    var grid = document.getElementById("gallery-grid");
    var rules = grid && LEAVES[grid.getAttribute("data-view")];
    if (rules) {
      var hide = rules.hide.indexOf(detail.action) >= 0, show = rules.show.indexOf(detail.action) >= 0;
      ids.forEach(function (id) {
        var tile = document.getElementById("image-" + id);
        if (!tile) return;
        // The selection stays for the next action until it is cleared; an image that leaves
        // the view leaves the selection with it.
        var box = tile.querySelector("input.tile-select");
        if (box && hide) box.checked = false;
        if (hide) tile.hidden = true;
        if (show) tile.hidden = false;
      });
      syncSelection();
    }
    // The job page shows each image's state: redraw it.
    var jobPage = document.getElementById("job-page");
    if (jobPage && detail.action !== "favourite" && detail.action !== "unfavourite" && window.htmx) {
      htmx.ajax("GET", window.location.pathname, { target: "#job-page", select: "#job-page", swap: "outerHTML" });
    }
  });

  // Compare and zip are GET requests: send only the ticked ids, for a clean address.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-selection] button[formmethod=get]");
    if (!button || button.disabled) return;
    var ids = Array.prototype.map.call(
      document.querySelectorAll("input.tile-select:checked"),
      function (box) { return "ids=" + encodeURIComponent(box.value); }
    );
    if (!ids.length) return;
    event.preventDefault();
    window.location.assign(button.getAttribute("formaction") + "?" + ids.join("&"));
  });

})();
