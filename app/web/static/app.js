// Enhancements on top of htmx. The pages work without them (forms post, links load), only
// less smoothly. No eval, no inline scripts or styles: this runs under a strict CSP.
(function () {
  "use strict";

  var POLL_MS = 3000;          // the fallback's pace while the live stream is down
  var CODE_REFRESH_MS = 300;   // debounce of the code examples while typing
  var TOAST_MS = 8000;
  var UNDO_TOAST_MS = 12000;  // long enough to read it and reach the Undo button
  var NARROW = "(max-width: 1023px)";  // below this the canvas is one column

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $$(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  // --- Messages: a toast for every action and failure, one polite voice for progress ---

  // The toast region is aria-live (polite); an error is an alert of its own.
  // `undo`, when given, is {label, run}: an Undo button that runs it and closes the toast.
  function toast(message, kind, undo) {
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
  }

  // The server answers a change to images with an HX-Trigger `toast`: what was done, and
  // how to undo it (another change, through the same route).
  document.addEventListener("toast", function (event) {
    var detail = event.detail || {};
    if (!detail.message) return;
    var undo = null;
    if (detail.undo && detail.undo.ids && detail.undo.ids.length) {
      undo = {
        run: function () {
          var values = { action: detail.undo.action, ids: detail.undo.ids };
          if (detail.undo.board) values.board = detail.undo.board;
          htmx.ajax("POST", "/gallery/selection", { source: document.body, values: values, swap: "none" });
        }
      };
    }
    toast(detail.message, "info", undo);
  });

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

  function announce(message) {
    var voice = document.getElementById("announcer");
    if (!voice) return;
    voice.textContent = "";
    // A fresh text node after a tick, so the same words twice are still spoken.
    setTimeout(function () { voice.textContent = message; }, 50);
  }

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
    toast(event.detail.message, event.detail.kind);
  });

  document.addEventListener("htmx:responseError", function (event) {
    toast(errorText(event.detail.xhr));
  });
  document.addEventListener("htmx:sendError", function () {
    toast("The server cannot be reached. Check that it is running; your form is kept.");
    setConnection("offline");
  });

  // --- The generate form ----------------------------------------------------------

  function limitsOf(form) {
    try { return JSON.parse(form.getAttribute("data-limits") || "{}"); } catch (e) { return {}; }
  }

  function plural(count, word) { return count + " " + word + (count === 1 ? "" : "s"); }

  function formatNumber(value) { return value.toLocaleString("en-US"); }

  // Mirrors custom_size_problem() in app/parameters.py. Every number comes from the
  // form's data-limits (the rules in force, rendered by the server) or its inputs' own
  // min, max and maxlength: none is written here.
  function customSizeProblem(limits, width, height) {
    var total = width * height;
    if (total < limits.total_pixels_min || total > limits.total_pixels_max) {
      return "Width × height is " + formatNumber(total) + " pixels; it must be between " +
        formatNumber(limits.total_pixels_min) + " and " + formatNumber(limits.total_pixels_max);
    }
    if (Math.max(width / height, height / width) > limits.aspect_max) {
      return "Width and height must keep the aspect ratio between 1:" + limits.aspect_max +
        " and " + limits.aspect_max + ":1";
    }
    return "";
  }

  function fieldErrorFor(input) {
    var id = input.id + "-error";
    var note = document.getElementById(id);
    if (!note) {
      note = document.createElement("p");
      note.className = "field-error";
      note.id = id;
      note.hidden = true;
      var field = input.closest(".field") || input.parentNode;
      field.appendChild(note);
    }
    return note;
  }

  function showFieldError(input, message) {
    var note = fieldErrorFor(input);
    note.textContent = message;
    note.hidden = !message;
    var described = (input.getAttribute("aria-describedby") || "").split(" ").filter(function (id) {
      return id && id !== note.id;
    });
    if (message) {
      input.setAttribute("aria-invalid", "true");
      described.push(note.id);
    } else {
      input.removeAttribute("aria-invalid");
    }
    if (described.length) input.setAttribute("aria-describedby", described.join(" "));
    else input.removeAttribute("aria-describedby");
  }

  function chosenSize(form) {
    var checked = $("input[name=image_size]:checked", form);
    return checked ? checked.value : "";
  }

  function syncCustomSize(form) {
    var fieldset = $("[data-custom-size]", form);
    if (!fieldset) return;
    var custom = chosenSize(form) === "custom";
    fieldset.hidden = !custom;
    // Disabled, the hidden fields neither block submitting nor get sent.
    fieldset.disabled = !custom;
    var width = $("#customWidth", form), height = $("#customHeight", form);
    var w = parseInt(width.value, 10), h = parseInt(height.value, 10);
    var shape = $("[data-custom-shape]", form), pixels = $("[data-custom-pixels]", form);
    if (w > 0 && h > 0) {
      if (shape) shape.setAttribute("viewBox", "0 0 " + w + " " + h);
      if (pixels) pixels.textContent = w + "×" + h;
    } else if (pixels) {
      pixels.textContent = "your own";
    }
    if (!custom) return;
    var problem = "";
    if (width.validity.valid && height.validity.valid && w > 0 && h > 0) {
      problem = customSizeProblem(limitsOf(form), w, h);
    }
    height.setCustomValidity(problem);
    if (problem || $("#customHeight-error", form)) showFieldError(height, problem || (height.validity.valid ? "" : height.validationMessage));
  }

  // The catalogue's price for the model (per image, or per job), times the image count
  // field the server names (Seedream's num_images, or another model's own).
  function syncCost(form) {
    var cost = $("[data-cost]", form);
    if (!cost) return;
    if (cost.hasAttribute("data-demo")) { cost.textContent = "· 0 credits (demo)"; return; }
    var countId = cost.getAttribute("data-count-input");
    var count = countId ? document.getElementById(countId) : null;
    var perImage = Number(cost.getAttribute("data-credits-per-image")) || 0;
    var perJob = Number(cost.getAttribute("data-credits-per-job")) || 0;
    var images = count ? Math.max(1, parseInt(count.value || count.placeholder, 10) || 1) : 1;
    var total = Math.round((perJob + images * perImage) * 100) / 100;
    cost.textContent = "· " + plural(total, "credit");
  }

  // The settings' summary line says what is chosen while they are folded away.
  function syncSettingsSummary(form) {
    var summary = $("[data-settings-summary]", form);
    if (!summary) return;
    var size = $("input[name=image_size]:checked", form);
    var sizeName = size ? $(".size-name", size.closest("label")) : null;
    var sizeText = sizeName ? sizeName.textContent.trim() : "";
    if (size && size.value === "custom") {
      var pixels = $("[data-custom-pixels]", form);
      if (pixels && /\d/.test(pixels.textContent)) sizeText = pixels.textContent.trim();
    }
    var images = Math.max(1, parseInt(($("#num_images", form) || {}).value, 10) || 1);
    var seed = $("#seed", form);
    var seedText = seed && !seed.disabled && seed.value ? "seed " + seed.value : "random seed";
    summary.textContent = [sizeText, plural(images, "image"), seedText].filter(Boolean).join(" · ");
  }

  // A preset's label stays only while the prompt is the preset's own; a prompt of your
  // own is not filed under it (the server applies the same rule).
  function normalised(text) { return text.trim().split(/\s+/).join(" "); }

  function syncPresetLabel(form) {
    var input = $("[data-preset-input]", form), label = $("[data-preset-label]", form), prompt = $("#prompt", form);
    if (!input || !prompt) return;
    var slug = input.getAttribute("data-preset-slug");
    if (slug === null) { slug = input.value; input.setAttribute("data-preset-slug", slug); }
    var presetPrompt = form.getAttribute("data-preset-prompt") || "";
    var follows = !!slug && !!presetPrompt && normalised(prompt.value) === normalised(presetPrompt);
    input.value = follows ? slug : "";
    if (label) label.hidden = !follows;
    $$(".preset-chip[data-preset]", form).forEach(function (chip) {
      var on = follows && chip.getAttribute("data-preset") === slug;
      chip.classList.toggle("is-selected", on);
      if (on) chip.setAttribute("aria-current", "true"); else chip.removeAttribute("aria-current");
    });
  }

  // Folded on a phone, so the output follows the presets; open on a desktop. A choice the
  // person made stands until the page is reloaded, through every preset they load.
  var settingsOpen = null;
  function syncSettingsFold(form) {
    var details = $("[data-settings]", form);
    if (!details) return;
    var hasError = !!$("[aria-invalid=true], .field-error:not([hidden])", details);
    var open = settingsOpen !== null ? settingsOpen : !window.matchMedia(NARROW).matches;
    details.open = open || hasError;
    details.addEventListener("toggle", function () { settingsOpen = details.open; });
  }

  function syncPromptCount(form) {
    var prompt = $("#prompt", form), counter = $("[data-prompt-count]", form);
    if (!prompt || !counter) return;
    var max = prompt.maxLength > 0 ? prompt.maxLength : limitsOf(form).prompt_max;
    counter.textContent = prompt.value.length + (max ? " / " + max : "") + " characters";
    counter.classList.toggle("is-near-limit", !!max && prompt.value.length > max * 0.9);
  }

  function syncSeed(form) {
    var seed = $("#seed", form), lock = $("[data-seed-lock]", form), hint = $("[data-seed-hint]", form);
    if (!seed || !lock) return;
    seed.disabled = !lock.checked;
    if (hint) hint.textContent = lock.checked ? "kept for every run" : "random each run";
  }

  // A seed within the rules in force, never their "random" value (below 0), so the
  // image records the seed that made it, as the server's own draw does.
  function randomSeed(form) {
    var limits = limitsOf(form);
    var low = Math.max(0, Number(limits.seed_min) || 0);
    var span = Number(limits.seed_max) - low + 1;
    if (!(span > 0)) span = 1;
    var value = 0;
    if (window.crypto && window.crypto.getRandomValues) {
      value = window.crypto.getRandomValues(new Uint32Array(1))[0] % span;
    } else {
      value = Math.floor(Math.random() * span);
    }
    return low + value;
  }

  function enhanceForm(form) {
    if (form.getAttribute("data-enhanced")) return;
    form.setAttribute("data-enhanced", "true");
    var lock = $("[data-seed-lock]", form);
    var seed = $("#seed", form);
    if (lock && seed) {
      lock.checked = seed.value.trim() !== "";
    }
    $$("[data-mod-key]", form).forEach(function (key) {
      if (/Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent)) key.textContent = "⌘";
    });
    syncCustomSize(form);
    syncCost(form);
    syncPromptCount(form);
    syncSeed(form);
    syncPresetLabel(form);
    syncSettingsFold(form);
    syncSettingsSummary(form);
  }

  var codeTimer = null;
  function refreshCode() {
    var panel = document.getElementById("code-panel");
    if (!panel || !panel.open) return;
    clearTimeout(codeTimer);
    codeTimer = setTimeout(function () { htmx.trigger(panel, "code-refresh"); }, CODE_REFRESH_MS);
  }

  function formOf(event) {
    return event.target && event.target.closest ? event.target.closest("#generate-form") : null;
  }

  document.addEventListener("input", function (event) {
    var form = formOf(event);
    if (!form) return;
    var target = event.target;
    if (target.id === "num_images" || target.type === "number") syncCost(form);
    if (target.id === "prompt") { syncPromptCount(form); syncPresetLabel(form); }
    if (target.id === "customWidth" || target.id === "customHeight") syncCustomSize(form);
    syncSettingsSummary(form);
    if (target.type === "number" && target.value !== "") {
      // Numbers are checked as they are typed, against the limits the server enforces.
      showFieldError(target, target.validity.valid ? "" : target.validationMessage);
    } else if (target.getAttribute("aria-invalid") === "true" && target.validity.valid) {
      // A field the person is fixing loses its old complaint once it is valid.
      showFieldError(target, "");
    }
    refreshCode();
  });

  document.addEventListener("change", function (event) {
    var form = formOf(event);
    if (!form) return;
    if (event.target.name === "image_size") syncCustomSize(form);
    if (event.target.hasAttribute("data-seed-lock")) {
      var seed = $("#seed", form);
      if (event.target.checked && !seed.value) seed.value = String(randomSeed(form));
      syncSeed(form);
    }
    syncCost(form);
    syncSettingsSummary(form);
    refreshCode();
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-seed-randomise]");
    if (!button) return;
    var form = button.closest("form");
    var seed = $("#seed", form), lock = $("[data-seed-lock]", form);
    seed.disabled = false;
    seed.value = String(randomSeed(form));
    if (lock) lock.checked = true;
    syncSeed(form);
    syncSettingsSummary(form);
    showFieldError(seed, "");
    refreshCode();
  });

  // "Same seed" on an image: its seed goes in the form, kept for every run.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-same-seed]");
    if (!button) return;
    var form = document.getElementById("generate-form");
    if (!form) return;
    var seed = $("#seed", form), lock = $("[data-seed-lock]", form);
    seed.disabled = false;
    seed.value = button.getAttribute("data-same-seed");
    if (lock) lock.checked = true;
    syncSeed(form);
    syncSettingsSummary(form);
    showFieldError(seed, "");
    refreshCode();
    toast("Seed " + seed.value + " is in the form, kept for every run.", "info");
  });

  // Ctrl+Enter (⌘+Enter on a Mac) submits from anywhere in the form.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    var form = formOf(event);
    if (!form) return;
    event.preventDefault();
    if (form.requestSubmit) form.requestSubmit();
    else $("button[type=submit]", form).click();
  });

  // The browser's checks (the same limits as the server's) shown as inline errors, not bubbles.
  document.addEventListener("invalid", function (event) {
    var input = event.target;
    var form = input.form;
    if (!form) return;
    event.preventDefault();
    showFieldError(input, input.validationMessage);
    var first = $(":invalid:not(fieldset):not(form)", form);
    if (first === input) input.focus();
  }, true);

  // --- Presets, dialogs, comparison -------------------------------------------------

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
      syncLive();
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
    toast(name + " is saved for the team.", "info");
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
      // A submission PixelDojo refused comes back as a card that has already failed.
      var added = $(".job-card", target);
      if (added && !added.hasAttribute("data-running") && added.getAttribute("data-status") !== "completed") {
        toast("Job #" + added.getAttribute("data-job-id") + ": " + (added.getAttribute("data-error") || "it was not accepted"));
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
    var done = function () { toast("Copied to the clipboard", "info"); };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(code.textContent).then(done, function () {
        toast("The browser refused the clipboard; select the code and copy it instead.");
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
      toast(at >= 0 ? "Left out of the comparison" : "Picked to compare (" + picks.length + ")", "info");
    }
    try { sessionStorage.setItem(COMPARE_KEY, JSON.stringify(picks.slice(-8))); } catch (e) { /* private mode */ }
    syncCompare();
  });

  // --- Live job cards: one stream per page, polling only while it is down ------------

  var live = { ids: "", element: null, open: false, pollTimer: null, state: "idle" };
  var known = {};  // job id → last status seen, to tell what just finished

  function runningIds() {
    var ids = $$(".job-card[data-running]").map(function (card) { return card.getAttribute("data-job-id"); });
    return ids.filter(function (id, i) { return ids.indexOf(id) === i; }).sort();
  }

  function setConnection(state) {
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
  }

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
        announce(title + " is done.");
      } else {
        var error = card.getAttribute("data-error") || "it did not finish";
        announce(title + " failed.");
        toast(title + ": " + error);
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

  // --- Start-up, and again for every piece htmx brings in ----------------------------

  htmx.onLoad(function (root) {
    if (root === document.body) loadTypical();
    $$("[data-js-only]", root.parentNode || root).forEach(function (el) { el.hidden = false; });
    var form = root.id === "generate-form" ? root : $("#generate-form", root);
    if (form) enhanceForm(form);
    syncCompare();
    syncLive();
    tick();
  });

  setInterval(tick, 1000);
})();
