// Small enhancements on top of htmx. Everything works without them, only less smoothly.
(function () {
  "use strict";

  // The custom width/height fields apply only to the "custom" image size.
  function syncCustomSize(form) {
    var select = form.querySelector("#image_size");
    var fieldset = form.querySelector("[data-custom-size]");
    if (!select || !fieldset) return;
    fieldset.hidden = select.value !== "custom";
  }

  // The cost shown on the button follows the number of images.
  function syncCost(form) {
    var count = form.querySelector("#num_images");
    var cost = form.querySelector("[data-cost]");
    if (!count || !cost) return;
    var perImage = Number(cost.getAttribute("data-credits-per-image")) || 1;
    var images = Math.max(1, parseInt(count.value, 10) || 1);
    cost.textContent = "≈ " + images * perImage + " credit" + (images * perImage === 1 ? "" : "s");
  }

  document.addEventListener("change", function (event) {
    var form = event.target.closest && event.target.closest("#generate-form");
    if (form) { syncCustomSize(form); syncCost(form); }
  });
  document.addEventListener("input", function (event) {
    var form = event.target.closest && event.target.closest("#generate-form");
    if (form && event.target.id === "num_images") syncCost(form);
  });

  function toast(message) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var item = document.createElement("div");
    item.className = "toast toast-error";
    item.setAttribute("role", "alert");
    item.textContent = message;
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, 8000);
  }

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var text = "The server answered " + xhr.status + ".";
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var alert = doc.querySelector("[role=alert], .error-page p");
      if (alert && alert.textContent.trim()) text = alert.textContent.trim();
    } catch (e) { /* keep the generic text */ }
    toast(text);
  });
  document.addEventListener("htmx:sendError", function () {
    toast("The server cannot be reached. Check that it is running; your work is kept.");
  });

  // A new job card replaces the "nothing yet" note.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "jobs") {
      var empty = document.getElementById("no-jobs");
      if (empty) empty.remove();
    }
  });
})();
