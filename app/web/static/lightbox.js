// The lightbox: an image large with its parameters and actions, ← and → to the next image
// on the page, Esc to close, and the job page one link away. Any link marked
// `data-lightbox="<image id>"` opens it (gallery tiles, the playground's results); without
// this file the link goes to the job page.
(function () {
  "use strict";

  var currentId = null;

  function lightbox() { return document.getElementById("lightbox"); }

  // The images on the page in order, each once (a tile and its job card may both link it).
  function images() {
    var seen = {}, ids = [];
    document.querySelectorAll("a[data-lightbox]").forEach(function (link) {
      var id = link.getAttribute("data-lightbox");
      if (seen[id] || link.closest("[hidden]")) return;
      seen[id] = true;
      ids.push(id);
    });
    return ids;
  }

  function openImage(id) {
    var dialog = lightbox();
    if (!dialog || !window.htmx) return false;
    currentId = String(id);
    htmx.ajax("GET", "/gallery/images/" + id + "/lightbox", { target: "#lightbox-body", swap: "innerHTML" });
    if (!dialog.open) dialog.showModal();
    return true;
  }

  // Move by `delta` images; at the end of the gallery, load its next page first.
  function step(delta) {
    var ids = images();
    var index = ids.indexOf(currentId);
    if (index < 0) return;
    var next = ids[index + delta];
    if (next) { openImage(next); return; }
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
    var link = currentId && document.querySelector('a[data-lightbox="' + currentId + '"]');
    if (link) { link.focus({ preventScroll: true }); link.scrollIntoView({ block: "nearest" }); }
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

  // An image moved to the trash from the lightbox closes it.
  document.addEventListener("images-changed", function (event) {
    var detail = event.detail || {};
    var ids = (detail.ids || []).map(String);
    var dialog = lightbox();
    if (dialog && dialog.open && currentId && ids.indexOf(currentId) >= 0 && detail.action === "trash") dialog.close();
  });
})();
