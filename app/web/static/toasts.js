// The page's shared helpers, and its messages: a toast for every action and failure, one
// polite voice for progress. Loaded first; the other scripts find these on
// window.Playground. The pages work without any of them (forms post, links load), only less
// smoothly. No eval, no inline scripts or styles: this runs under a strict CSP.
(function () {
  "use strict";

  var P = window.Playground = window.Playground || {};

  var TOAST_MS = 8000;
  var UNDO_TOAST_MS = 12000;  // long enough to read it and reach the Undo button

  P.NARROW = "(max-width: 1023px)";  // below this the playground is one column
  P.$ = function (selector, root) { return (root || document).querySelector(selector); };
  P.$$ = function (selector, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(selector));
  };
  P.plural = function (count, word) { return count + " " + word + (count === 1 ? "" : "s"); };
  var $ = P.$, $$ = P.$$;

  // The toast region is aria-live (polite); an error is an alert of its own.
  // `undo`, when given, is {run}: an Undo button that runs it and closes the toast.
  P.toast = function (message, kind, undo) {
    var box = document.getElementById("toasts");
    if (!box) return null;
    var item = document.createElement("div");
    item.className = "toast toast-" + (kind || "error");
    if (kind !== "info") item.setAttribute("role", "alert");
    var text = document.createElement("span");
    text.textContent = message;
    item.appendChild(text);
    if (undo) {
      var again = document.createElement("button");
      again.type = "button";
      again.className = "toast-undo";
      again.textContent = "Undo";
      again.addEventListener("click", function () { item.remove(); undo.run(); });
      // "Moved 2 images to the trash · Undo", read as one line.
      text.textContent = message + " · ";
      item.appendChild(again);
    }
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", function () { item.remove(); });
    item.appendChild(close);
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, undo ? UNDO_TOAST_MS : TOAST_MS);
    return item;
  };

  // The server answers a change with an HX-Trigger `toast`: what was done, and how to undo
  // it: another change through the gallery's selection route, or a route of its own (`url`:
  // a stop's undo).
  document.addEventListener("toast", function (event) { showToast(event.detail || {}); });

  // Or as markup swapped into the toasts' region (app/web/stops.py says why): shown, then gone.
  htmx.onLoad(function (root) {
    var markers = root.matches && root.matches("[data-toast]") ? [root] : $$("[data-toast]", root);
    markers.forEach(function (marker) {
      var detail = null;
      try { detail = JSON.parse(marker.getAttribute("data-toast")); } catch (e) { /* not ours */ }
      marker.remove();
      if (detail) showToast(detail);
    });
  });

  function showToast(detail) {
    if (!detail.message) return;
    var undo = null, spec = detail.undo;
    if (spec && spec.url) {
      undo = {
        run: function () {
          htmx.ajax("POST", spec.url, { source: document.body, values: { ids: spec.ids || [] }, swap: "none" });
        }
      };
    } else if (spec && spec.ids && spec.ids.length) {
      undo = {
        run: function () {
          var values = { action: spec.action, ids: spec.ids };
          if (spec.board) values.board = spec.board;
          htmx.ajax("POST", "/gallery/selection", { source: document.body, values: values, swap: "none" });
        }
      };
    }
    P.toast(detail.message, "info", undo);
  }

  // Stars follow a change wherever the image shows: a tile, the lightbox, the output.
  document.addEventListener("images-changed", function (event) {
    var detail = event.detail || {};
    if (detail.favourite === null || detail.favourite === undefined) return;
    (detail.ids || []).forEach(function (id) {
      $$('[data-fav-image="' + id + '"]').forEach(function (form) {
        var button = $(".fav-button", form), next = $("input[name=favourite]", form);
        if (!button) return;
        button.classList.toggle("is-on", !!detail.favourite);
        button.setAttribute("aria-pressed", detail.favourite ? "true" : "false");
        button.setAttribute("title", detail.favourite ? "Remove from favourites" : "Add to favourites");
        button.textContent = detail.favourite ? "★" : "☆";
        if (next) next.value = detail.favourite ? "false" : "true";
      });
    });
  });

  P.announce = function (message) {
    var voice = document.getElementById("announcer");
    if (!voice) return;
    voice.textContent = "";
    // A fresh text node after a tick, so the same words twice are still spoken.
    setTimeout(function () { voice.textContent = message; }, 50);
  };

  function errorText(xhr) {
    var text = "The server answered " + xhr.status + ".";
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var alert = doc.querySelector("[role=alert], .error-page p");
      if (alert && alert.textContent.trim()) text = alert.textContent.trim().replace(/\s+/g, " ");
    } catch (e) { /* keep the generic text */ }
    return text;
  }

  // Other scripts (references.js) ask for a toast by event.
  document.addEventListener("playground-toast", function (event) {
    P.toast(event.detail.message, event.detail.kind);
  });

  document.addEventListener("htmx:responseError", function (event) {
    P.toast(errorText(event.detail.xhr));
  });
  document.addEventListener("htmx:sendError", function () {
    P.toast("The server cannot be reached. Check that it is running; your form is kept.");
    if (P.setConnection) P.setConnection("offline");
  });
})();
