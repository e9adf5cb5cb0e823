// The gallery's enhancements: lightbox with ←/→/Esc, selection bar, copy buttons.
// Without this file every link and form still works, only less smoothly.
(function () {
  "use strict";

  var currentId = null;

  function lightbox() { return document.getElementById("lightbox"); }

  function tiles() {
    return Array.prototype.slice.call(
      document.querySelectorAll("#gallery-grid .gallery-item[data-image-id]")
    );
  }

  function openImage(id) {
    var dialog = lightbox();
    if (!dialog || !window.htmx) return false;
    currentId = String(id);
    htmx.ajax("GET", "/gallery/images/" + id + "/lightbox", { target: "#lightbox-body", swap: "innerHTML" });
    if (!dialog.open) dialog.showModal();
    return true;
  }

  // Move by `delta` tiles; at the end of the grid, load the next page first.
  function step(delta) {
    var list = tiles();
    var index = list.findIndex(function (li) { return li.getAttribute("data-image-id") === currentId; });
    if (index < 0) return;
    var target = list[index + delta];
    if (target) { openImage(target.getAttribute("data-image-id")); return; }
    var more = document.querySelector("#gallery-grid .gallery-more[hx-get]");
    if (delta > 0 && more && window.htmx) {
      var grid = document.getElementById("gallery-grid");
      grid.addEventListener("htmx:afterSettle", function again() {
        grid.removeEventListener("htmx:afterSettle", again);
        step(delta);
      });
      htmx.trigger(more, "gallery-more");
    }
  }

  // Arrow keys that belong to a field or a tab list (the code examples) are not for the lightbox.
  function keysTaken(target) {
    if (!target || !target.closest) return false;
    if (target.closest("[role=tablist]")) return true;
    return /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName) && target.type !== "checkbox";
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-lightbox]");
    if (link && event.button === 0 && !(event.metaKey || event.ctrlKey || event.shiftKey || event.altKey)) {
      if (openImage(link.getAttribute("data-lightbox"))) event.preventDefault();
      return;
    }
    var dialog = lightbox();
    if (!dialog || !dialog.open) return;
    if (event.target === dialog) { dialog.close(); return; }  // a click on the backdrop
    if (event.target.closest("[data-lightbox-prev]")) step(-1);
    else if (event.target.closest("[data-lightbox-next]")) step(1);
    else if (event.target.closest("[data-lightbox-close]")) dialog.close();
  });

  document.addEventListener("keydown", function (event) {
    var dialog = lightbox();
    if (!dialog || !dialog.open || keysTaken(event.target)) return;
    if (event.key === "ArrowLeft") { event.preventDefault(); step(-1); }
    else if (event.key === "ArrowRight") { event.preventDefault(); step(1); }
    // Escape closes the dialog natively.
  });

  document.addEventListener("close", function (event) {
    if (event.target !== lightbox()) return;
    // Keyboard users land back on the image they were looking at.
    var tile = currentId && document.getElementById("image-" + currentId);
    var link = tile && tile.querySelector("a");
    if (link) { link.focus({ preventScroll: true }); tile.scrollIntoView({ block: "nearest" }); }
    var body = document.getElementById("lightbox-body");
    if (body) body.innerHTML = "";
  }, true);

  // A star toggled in the lightbox shows on its tile too.
  document.addEventListener("htmx:afterSwap", function (event) {
    var form = event.detail.elt;
    if (!form || !form.classList || !form.classList.contains("fav-form")) return;
    if (!lightbox() || !lightbox().contains(form)) return;
    var tile = document.getElementById("image-" + currentId);
    var old = tile && tile.querySelector(".fav-form");
    if (old) { old.outerHTML = form.outerHTML; htmx.process(tile); }
  });

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
        var box = tile.querySelector("input.tile-select");
        if (box) box.checked = false;
        if (hide) tile.hidden = true;
        if (show) tile.hidden = false;
      });
      syncSelection();
    }
    var dialog = lightbox();
    if (dialog && dialog.open && currentId && ids.indexOf(currentId) >= 0 && detail.action === "trash") dialog.close();
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
