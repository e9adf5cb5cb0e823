// Reference images in the playground: the References row, the dialog that picks them from
// the team's gallery, and uploads (a file chosen, dropped or pasted). The row's hidden
// `reference_images` inputs are what the form posts; the server checks them against the
// model's image input (how many, which images) before anything is sent. Runs under the
// same strict CSP as the page's other scripts: no inline code, no eval.
(function () {
  "use strict";

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $$(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  function row() { return $("#generate-form [data-references]"); }
  function dialog() { return $("[data-reference-dialog]"); }

  function say(message, kind) {
    // The page's toasts live in toasts.js; an event keeps the two files apart.
    document.dispatchEvent(new CustomEvent("playground-toast", { detail: { message: message, kind: kind || "error" } }));
  }

  function chosenIds() {
    var fieldset = row();
    if (!fieldset) return [];
    return $$("input[name=reference_images]", $("[data-reference-list]", fieldset)).map(function (input) { return input.value; });
  }

  function maxOf(fieldset) { return parseInt(fieldset.getAttribute("data-max"), 10) || 1; }

  function renumber(fieldset) {
    $$("[data-reference-list] > li", fieldset).forEach(function (item, index) {
      var id = $("input", item).value;
      $("img", item).alt = "Reference " + (index + 1) + ": gallery image " + id;
      $("[data-reference-remove]", item).setAttribute("aria-label", "Remove reference " + (index + 1));
    });
  }

  function addReference(fieldset, id) {
    if (chosenIds().indexOf(String(id)) !== -1) return true;
    var max = maxOf(fieldset);
    if (chosenIds().length >= max) {
      say("This model takes at most " + max + " reference image" + (max === 1 ? "" : "s") + ".");
      return false;
    }
    var item = $("[data-reference-template]", fieldset).content.firstElementChild.cloneNode(true);
    $("a", item).href = "/api/images/" + id;
    $("img", item).src = "/api/images/" + id + "/thumbnail";
    $("input", item).name = "reference_images";
    $("input", item).value = String(id);
    $("[data-reference-list]", fieldset).appendChild(item);
    renumber(fieldset);
    clearError(fieldset);
    return true;
  }

  function setReferences(fieldset, ids) {
    $("[data-reference-list]", fieldset).textContent = "";
    ids.forEach(function (id) { addReference(fieldset, id); });
  }

  function clearError(fieldset) {
    var error = $("#reference_images-error", fieldset);
    if (error) error.remove();
  }

  // --- The dialog -----------------------------------------------------------------------

  var picked = [];  // ids selected in the dialog, in the order they were picked

  function syncChoices() {
    var box = dialog();
    if (!box) return;
    $$("[data-reference-choice]", box).forEach(function (button) {
      button.setAttribute("aria-pressed", picked.indexOf(button.getAttribute("data-reference-choice")) !== -1 ? "true" : "false");
    });
    var fieldset = row();
    var max = fieldset ? maxOf(fieldset) : 1;
    var count = $("[data-reference-count]", box);
    if (count) count.textContent = picked.length + " of at most " + max + " selected";
  }

  function openDialog() {
    var box = dialog();
    if (!box || !box.showModal) return;
    picked = chosenIds();
    var search = $("input[type=search]", box);
    if (search) search.value = "";
    htmx.ajax("GET", "/playground/references", { target: "#reference-choices", swap: "innerHTML" }).then(syncChoices);
    box.showModal();
    syncChoices();
    if (search) search.focus();
  }

  function toggleChoice(button) {
    var id = button.getAttribute("data-reference-choice");
    var at = picked.indexOf(id);
    var fieldset = row();
    if (at !== -1) {
      picked.splice(at, 1);
    } else if (fieldset && picked.length >= maxOf(fieldset)) {
      if (maxOf(fieldset) === 1) picked = [id];
      else say("This model takes at most " + maxOf(fieldset) + " reference images.");
    } else {
      picked.push(id);
    }
    syncChoices();
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target : null;
    if (!target) return;
    if (target.closest("[data-open-references]")) { openDialog(); return; }
    var remove = target.closest("[data-reference-remove]");
    if (remove) {
      var fieldset = remove.closest("[data-references]");
      remove.closest("li").remove();
      renumber(fieldset);
      $("[data-open-references]", fieldset).focus();
      return;
    }
    var choice = target.closest("[data-reference-choice]");
    if (choice) { toggleChoice(choice); return; }
    if (target.closest("[data-reference-use]")) {
      var current = row();
      if (current) setReferences(current, picked);
      dialog().close();
      if (current) $("[data-open-references]", current).focus();
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "reference-choices") syncChoices();
    if (event.detail.target && event.detail.target.closest && event.detail.target.closest("#reference-choices")) syncChoices();
  });

  // --- Uploads: chosen, dropped or pasted ----------------------------------------------------

  function csrfToken() {
    var headers = document.body.getAttribute("hx-headers");
    try { return JSON.parse(headers || "{}")["X-CSRF-Token"] || ""; } catch (e) { return ""; }
  }

  function upload(file) {
    if (!/^image\/(png|jpeg|webp)$/.test(file.type)) {
      say((file.name || "That file") + " is not a PNG, JPEG or WebP image.");
      return Promise.resolve(null);
    }
    var url = "/api/uploads?name=" + encodeURIComponent(file.name || "pasted image");
    return fetch(url, {
      method: "POST",
      body: file,
      headers: { "Content-Type": file.type, "X-CSRF-Token": csrfToken() },
      credentials: "same-origin"
    }).then(function (response) {
      return response.json().then(function (answer) {
        if (!response.ok) throw new Error((answer.error && answer.error.message) || ("The server answered " + response.status + "."));
        return answer;
      });
    }).then(function (answer) {
      return String(answer.image_id);
    }).catch(function (error) {
      say("The upload failed: " + error.message);
      return null;
    });
  }

  function uploadAll(files) {
    var fieldset = row();
    if (!fieldset || !files.length) return;
    var uploads = Array.prototype.slice.call(files).map(upload);
    Promise.all(uploads).then(function (ids) {
      ids.forEach(function (id) {
        if (!id) return;
        var box = dialog();
        if (box && box.open) {
          if (picked.indexOf(id) === -1) picked.push(id);
          htmx.ajax("GET", "/playground/references", { target: "#reference-choices", swap: "innerHTML" }).then(syncChoices);
        } else {
          addReference(fieldset, id);
        }
      });
      if (ids.some(Boolean)) say("Uploaded to the gallery, marked as an upload.", "info");
    });
  }

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("[data-reference-upload]")) return;
    uploadAll(input.files);
    input.value = "";
  });

  document.addEventListener("paste", function (event) {
    if (!row() || !event.clipboardData) return;
    var files = Array.prototype.slice.call(event.clipboardData.files || []).filter(function (file) {
      return /^image\//.test(file.type);
    });
    if (!files.length) return;  // text pastes go where they always went
    event.preventDefault();
    uploadAll(files);
  });

  document.addEventListener("dragover", function (event) {
    var fieldset = event.target.closest && event.target.closest("[data-references]");
    if (!fieldset) return;
    event.preventDefault();
    fieldset.classList.add("is-drop-target");
  });
  document.addEventListener("dragleave", function (event) {
    var fieldset = event.target.closest && event.target.closest("[data-references]");
    if (fieldset) fieldset.classList.remove("is-drop-target");
  });
  document.addEventListener("drop", function (event) {
    var fieldset = event.target.closest && event.target.closest("[data-references]");
    if (!fieldset) return;
    event.preventDefault();
    fieldset.classList.remove("is-drop-target");
    uploadAll(event.dataTransfer.files);
  });
})();
