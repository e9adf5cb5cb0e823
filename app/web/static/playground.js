// The playground around its form: dialogs, presets, the output (a new job takes it, the one
// it replaces goes to the recent strip), code tabs, copying, and images picked to compare.
// Builds on toasts.js (window.Playground).
(function () {
  "use strict";

  var P = window.Playground;
  var $ = P.$, $$ = P.$$;

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target : null;
    if (!target) return;
    var opener = target.closest("[data-open-dialog]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-open-dialog"));
      if (dialog && dialog.showModal) {
        dialog.showModal();
        // A dialog that spends credits starts on Cancel; a form starts on its first field.
        var first = $("[data-autofocus]", dialog) || $("input:not([type=hidden]), button[type=submit]", dialog);
        if (first) first.focus();
      }
      return;
    }
    var closer = target.closest("[data-close-dialog]");
    if (closer) {
      closer.closest("dialog").close();
      return;
    }
    var dismiss = target.closest("[data-dismiss]");
    if (dismiss) {
      var section = document.getElementById(dismiss.getAttribute("data-dismiss"));
      if (section) { section.hidden = true; section.textContent = ""; }
      var heading = document.getElementById("recent-heading");
      if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
      P.syncLive();
      return;
    }
    var card = target.closest(".preset-chip");
    if (card) {
      $$(".preset-chip").forEach(function (other) {
        other.classList.toggle("is-selected", other === card);
        if (other === card) other.setAttribute("aria-current", "true");
        else other.removeAttribute("aria-current");
      });
    }
  });

  document.addEventListener("preset-saved", function (event) {
    var dialog = document.getElementById("save-preset-dialog");
    if (dialog && dialog.open) dialog.close();
    var form = document.getElementById("save-preset-form");
    if (form) form.reset();
    var name = event.detail && event.detail.name ? "“" + event.detail.name + "”" : "The preset";
    P.toast(name + " is saved for the team.", "info");
  });

  // A new job takes the output; the one it replaces moves to the head of the recent strip.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "output" || !event.detail.shouldSwap) return;
    var xhr = event.detail.xhr;
    if (xhr && xhr.getResponseHeader("HX-Reswap") === "none") return;  // the same job again
    var strip = document.getElementById("jobs");
    var empty = document.getElementById("no-jobs");
    if (empty) empty.remove();
    $$(".job-card", target).forEach(function (card) {
      if (strip) {
        strip.insertBefore(card, strip.firstChild);
        var none = document.getElementById("no-recent");
        if (none) none.hidden = true;
      } else {
        card.remove();
      }
    });
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (!target) return;
    if (target.id === "generate-form" || (event.detail.elt && event.detail.elt.id === "generate-form")) {
      // The form filled in place (a preset, a remix): its prompt stays in view.
      var prompt = document.getElementById("prompt");
      if (prompt) {
        var box = prompt.getBoundingClientRect();
        if (box.top < 0 || box.bottom > window.innerHeight) prompt.scrollIntoView({ block: "center" });
      }
    }
    if (target.id === "output") {
      var added = $(".job-card", target);
      // On a phone the output is below the form: the new job's progress comes into view at
      // once, and its images appear there when done.
      if (added && window.matchMedia(P.NARROW).matches) {
        added.scrollIntoView({ block: "start", behavior: "instant" });
      }
      // A submission PixelDojo refused comes back as a card that has already failed.
      if (added && !added.hasAttribute("data-running") && added.getAttribute("data-status") !== "completed") {
        P.toast("Job #" + added.getAttribute("data-job-id") + ": " + (added.getAttribute("data-error") || "it was not accepted"));
      }
    }
    if (target.id === "comparison" || (event.detail.elt && event.detail.elt.id === "comparison")) {
      var dialog = document.getElementById("try-all-dialog");
      if (dialog && dialog.open) dialog.close();
      var comparison = document.getElementById("comparison");
      if (comparison) {
        comparison.scrollIntoView({ block: "start" });
        comparison.focus({ preventScroll: true });
      }
    }
  });

  document.addEventListener("keydown", function (event) {
    // Arrow keys move between code tabs, as in every tab list.
    var tab = event.target.closest && event.target.closest("[role=tab]");
    if (!tab || (event.key !== "ArrowRight" && event.key !== "ArrowLeft" && event.key !== "Home" && event.key !== "End")) return;
    var tabs = $$("[role=tab]", tab.closest("[role=tablist]"));
    var index = tabs.indexOf(tab);
    if (event.key === "ArrowRight") index = (index + 1) % tabs.length;
    if (event.key === "ArrowLeft") index = (index - 1 + tabs.length) % tabs.length;
    if (event.key === "Home") index = 0;
    if (event.key === "End") index = tabs.length - 1;
    event.preventDefault();
    selectTab(tabs[index]);
    tabs[index].focus();
  });

  function selectTab(tab) {
    var list = tab.closest("[role=tablist]");
    $$("[role=tab]", list).forEach(function (other) {
      var selected = other === tab;
      other.setAttribute("aria-selected", selected ? "true" : "false");
      other.tabIndex = selected ? 0 : -1;
      var panel = document.getElementById(other.getAttribute("aria-controls"));
      if (panel) panel.hidden = !selected;
    });
  }

  document.addEventListener("click", function (event) {
    var tab = event.target.closest && event.target.closest("[role=tab]");
    if (tab) { selectTab(tab); return; }
    var copy = event.target.closest && event.target.closest("[data-copy]");
    if (!copy) return;
    var code = $("[data-code]", document.getElementById(copy.getAttribute("data-copy")));
    if (!code) return;
    var done = function () { P.toast("Copied to the clipboard", "info"); };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(code.textContent).then(done, function () {
        P.toast("The browser refused the clipboard; select the code and copy it instead.");
      });
    }
  });

  // --- Compare: images picked on their cards, compared side by side in the gallery ---

  var COMPARE_KEY = "seedream-compare";
  function comparePicks() {
    try { return JSON.parse(sessionStorage.getItem(COMPARE_KEY) || "[]"); } catch (e) { return []; }
  }
  function syncCompare() {
    var picks = comparePicks();
    $$("[data-compare]").forEach(function (button) {
      var on = picks.indexOf(button.getAttribute("data-compare")) >= 0;
      button.setAttribute("aria-pressed", on ? "true" : "false");
    });
    var tray = $("[data-compare-tray]");
    if (!tray) return;
    tray.hidden = picks.length === 0;
    var link = $("[data-compare-link]", tray);
    if (picks.length >= 2) {
      link.setAttribute("href", "/compare?" + picks.map(function (id) { return "ids=" + encodeURIComponent(id); }).join("&"));
      link.removeAttribute("aria-disabled");
      link.textContent = "Compare " + picks.length + " images";
    } else {
      link.removeAttribute("href");
      link.setAttribute("aria-disabled", "true");
      link.textContent = "1 picked: pick another to compare";
    }
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-compare]");
    var clear = event.target.closest && event.target.closest("[data-compare-clear]");
    if (!button && !clear) return;
    var picks = clear ? [] : comparePicks();
    if (button) {
      var id = button.getAttribute("data-compare");
      var at = picks.indexOf(id);
      if (at >= 0) picks.splice(at, 1); else picks.push(id);
      P.toast(at >= 0 ? "Left out of the comparison" : "Picked to compare (" + picks.length + ")", "info");
    }
    try { sessionStorage.setItem(COMPARE_KEY, JSON.stringify(picks.slice(-8))); } catch (e) { /* private mode */ }
    syncCompare();
  });

  htmx.onLoad(function (root) {
    $$("[data-js-only]", root.parentNode || root).forEach(function (el) { el.hidden = false; });
    syncCompare();
  });
})();
