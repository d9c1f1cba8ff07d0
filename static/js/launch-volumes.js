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

  // The wizard checks as you type in inputs that were on the page when it loaded (htmx reads its
  // `from:` selector once); these rows come later, with a zone or this button: say "changed" for
  // them once typing pauses, as the wizard's own inputs do.
  var pause;
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (!input.closest || !input.closest("#volume-rows")) return;
    clearTimeout(pause);
    pause = setTimeout(function () {
      input.dispatchEvent(new Event("change", { bubbles: true }));
    }, 500);
  });

  document.addEventListener("DOMContentLoaded", function () { init(); });
  document.addEventListener("htmx:load", function (event) { init(event.target); });
})();
