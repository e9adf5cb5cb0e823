// The generate form: its checks (the limits the server enforces, rendered into the page),
// its cost, the settings' summary, seeds, Ctrl+Enter, and the model, size and image count the
// person used last, put back in a fresh form. Builds on toasts.js (window.Playground).
(function () {
  "use strict";

  var P = window.Playground;
  var $ = P.$, $$ = P.$$, plural = P.plural, NARROW = P.NARROW;
  var CODE_REFRESH_MS = 300;   // debounce of the code examples while typing

  function limitsOf(form) {
    try { return JSON.parse(form.getAttribute("data-limits") || "{}"); } catch (e) { return {}; }
  }

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

  // The settings' summary line says what is chosen while they are folded away; beside the
  // sizes' shapes, one line names the size chosen and its pixels.
  function syncSettingsSummary(form) {
    var size = $("input[name=image_size]:checked", form);
    var option = size ? size.closest("label") : null;
    var sizeName = option ? $(".size-name", option) : null;
    var sizeText = sizeName ? sizeName.textContent.trim() : "";
    var pixelsText = option ? ($(".size-pixels", option) || {}).textContent || "" : "";
    if (size && size.value === "custom") {
      var pixels = $("[data-custom-pixels]", form);
      if (pixels && /\d/.test(pixels.textContent)) sizeText = pixels.textContent.trim();
    }
    var detail = $("[data-size-detail]", form);
    if (detail && sizeName) {
      detail.textContent = sizeName.textContent.trim() + (/\d/.test(pixelsText) ? " · " + pixelsText.trim() : "");
    }
    var summary = $("[data-settings-summary]", form);
    if (!summary) return;
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
    P.toast("Seed " + seed.value + " is in the form, kept for every run.", "info");
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

  // --- The last model, size and image count, per person in this browser ------------------
  // Kept in localStorage under the signed-in person's id (or "local" without sign-in): the
  // simplest home that needs no round trip, though another browser starts afresh.

  function rememberKey() {
    return "seedream-form:" + (document.body.getAttribute("data-person") || "local");
  }

  function remembered() {
    try { return JSON.parse(localStorage.getItem(rememberKey()) || "null"); } catch (e) { return null; }
  }

  function countInput(form) {
    var cost = $("[data-cost]", form);
    var id = cost && cost.getAttribute("data-count-input");
    return id ? document.getElementById(id) : null;
  }

  function modelOf(form) {
    var picker = $("[name=model]", form);
    return picker ? picker.value : "";
  }

  function remember(form) {
    var count = countInput(form);
    var chosen = {
      model: modelOf(form),
      size: chosenSize(form),
      images: count ? count.value : ""
    };
    try { localStorage.setItem(rememberKey(), JSON.stringify(chosen)); } catch (e) { /* private mode */ }
  }

  var firstForm = true;  // only the page's own form may switch model: later, the person picks

  // A fresh form (nothing in particular asked for) gets the person's last choices back.
  function putBack(form) {
    var first = firstForm;
    firstForm = false;
    if (!form.hasAttribute("data-fresh")) return;
    var saved = remembered();
    if (!saved) return;
    var picker = $("select[data-model-picker]", form);
    if (first && saved.model && picker && picker.value !== saved.model) {
      var known = $$("option", picker).some(function (option) { return option.value === saved.model; });
      if (known) {
        picker.value = saved.model;
        htmx.trigger(picker, "change");  // its form comes back fresh, and gets the rest
        return;
      }
    }
    if (saved.model && saved.model !== modelOf(form)) return;
    var size = saved.size && $('input[name=image_size][value="' + saved.size + '"]', form);
    if (size && !size.checked) {
      size.checked = true;
      syncCustomSize(form);
    }
    var count = countInput(form);
    if (count && saved.images && count.value !== saved.images) count.value = saved.images;
  }

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (!form || form.id !== "generate-form" || !event.detail.successful) return;
    if (event.detail.xhr && event.detail.xhr.status === 422) return;
    remember(form);
  });

  P.enhanceForm = function (form) {
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
    putBack(form);
    syncCustomSize(form);
    syncCost(form);
    syncPromptCount(form);
    syncSeed(form);
    syncPresetLabel(form);
    syncSettingsFold(form);
    syncSettingsSummary(form);
  };

  htmx.onLoad(function (root) {
    var form = root.id === "generate-form" ? root : $("#generate-form", root);
    if (form) P.enhanceForm(form);
  });
})();
