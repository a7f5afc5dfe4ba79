// Models catalog: filter the rendered models live, by the same rules as the server (pages/catalog.py).
(function () {
  "use strict";
  var form = document.querySelector("form[data-catalog-filters]");
  if (!form) return;
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-model]"));
  var providers = Array.prototype.slice.call(document.querySelectorAll("section[data-provider]"));
  var counter = document.querySelector("[data-testid='match-count']");
  var none = document.querySelector("[data-testid='no-match']");
  var priceField = form.elements.max_price;

  // USD text -> nanos (an integer), or null when empty; NaN when not a price.
  function nanos(text) {
    text = text.trim().replace(/^\$/, "").trim();
    if (!text) return null;
    if (!/^\d+(\.\d{0,9})?$|^\.\d{1,9}$/.test(text)) return NaN;
    var parts = text.split(".");
    var fraction = ((parts[1] || "") + "000000000").slice(0, 9);
    return Number(parts[0] || "0") * 1e9 + Number(fraction);
  }

  function accepts(row, wanted) {
    if (wanted.provider && row.getAttribute("data-family") !== wanted.provider) return false;
    if (wanted.modality && row.getAttribute("data-modalities").split(" ").indexOf(wanted.modality) < 0) return false;
    if (wanted.maxPrice !== null) {
      var input = row.getAttribute("data-input-nanos");
      if (input === "" || Number(input) > wanted.maxPrice) return false;
    }
    return !wanted.q || row.getAttribute("data-search").indexOf(wanted.q) >= 0;
  }

  function apply() {
    var maxPrice = nanos(priceField.value);
    priceField.setAttribute("aria-invalid", isNaN(maxPrice) ? "true" : "false");
    var wanted = {
      q: form.elements.q.value.trim().toLowerCase(),
      provider: form.elements.provider.value,
      modality: form.elements.modality.value,
      maxPrice: isNaN(maxPrice) ? null : maxPrice
    };
    var shown = 0;
    rows.forEach(function (row) {
      var ok = accepts(row, wanted);
      row.hidden = !ok;
      if (ok) shown += 1;
    });
    providers.forEach(function (section) {
      section.hidden = !section.querySelector("tr[data-model]:not([hidden])");
    });
    counter.textContent = shown === 1 ? counter.getAttribute("data-one") : counter.getAttribute("data-many").replace("{count}", shown);
    none.hidden = shown > 0;
  }

  form.addEventListener("input", apply);
  form.addEventListener("change", apply);
})();
