// Launch wizard, new volumes: "Add another volume" adds a row of inputs. Without this file the
// page shows one empty row more after each check, and the button stays hidden.
(function () {
  "use strict";

  function init(root) {
    (root || document).querySelectorAll("[data-add-volume]").forEach(function (button) {
      button.hidden = false;
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-add-volume]");
    if (!button) return;
    var template = document.getElementById("volume-row-template");
    var rows = document.getElementById("volume-rows");
    if (!template || !rows) return;
    var row = template.content.firstElementChild.cloneNode(true);
    rows.appendChild(row);
    row.querySelector("input").focus();
  });

  document.addEventListener("DOMContentLoaded", function () { init(); });
  document.addEventListener("htmx:load", function (event) { init(event.target); });
})();
