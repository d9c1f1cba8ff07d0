// Zone picker: clicking (or pressing Enter on) a map pin selects the first zone of that region that
// accepts new resources, and keeps the pins and the list in step. Without this file the pins are
// links to the region in the list and the list is a plain radio group.
(function () {
  "use strict";

  function setUp(picker) {
    if (picker.dataset.ready) return;
    picker.dataset.ready = "1";
    var readonly = picker.classList.contains("zone-picker-readonly");

    function highlight(code) {
      picker.querySelectorAll(".pin").forEach(function (pin) {
        pin.classList.toggle("pin-current", pin.dataset.region === code);
      });
      picker.querySelectorAll(".region").forEach(function (region) {
        region.classList.toggle("region-current", region.dataset.region === code);
      });
    }

    picker.querySelectorAll(".pin").forEach(function (pin) {
      pin.addEventListener("click", function (event) {
        var code = pin.dataset.region;
        var region = picker.querySelector('.region[data-region="' + code + '"]');
        if (!region) return;
        event.preventDefault();
        highlight(code);
        if (!readonly) {
          var input = region.querySelector("input[type=radio]:not(:disabled)");
          if (input) {
            input.checked = true;
            input.dispatchEvent(new Event("change", { bubbles: true }));
            input.focus({ preventScroll: true });
          }
        }
        region.scrollIntoView({ block: "nearest" });
      });
    });

    picker.addEventListener("change", function (event) {
      if (event.target.type !== "radio") return;
      picker.querySelectorAll(".zone").forEach(function (label) {
        label.classList.toggle("zone-selected", label.contains(event.target));
      });
      var region = event.target.closest(".region");
      if (region) highlight(region.dataset.region);
    });

    var checked = picker.querySelector("input[type=radio]:checked");
    if (checked) highlight(checked.closest(".region").dataset.region);
  }

  function init(root) {
    (root || document).querySelectorAll("[data-zone-picker]").forEach(setUp);
  }

  document.addEventListener("DOMContentLoaded", function () { init(); });
  document.addEventListener("htmx:load", function (event) { init(event.target); });
})();
