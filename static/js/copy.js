// Copy buttons: <button data-copy="ID" hidden> copies the text of the element with that id to the
// clipboard and says so for a moment ("data-copied"). Without this file (or a clipboard) the button
// stays hidden and the text is selected with one click (code.copyable).
(function () {
  "use strict";

  function setUp(button) {
    var target = document.getElementById(button.dataset.copy);
    if (!target || !navigator.clipboard) return;
    var label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent.trim()).then(
        function () {
          button.textContent = button.dataset.copied || "Copied";
          window.setTimeout(function () { button.textContent = label; }, 2000);
        },
        function () {
          window.getSelection().selectAllChildren(target);  // the clipboard refused: select it instead
        }
      );
    });
  }

  document.querySelectorAll("button[data-copy]").forEach(setUp);
})();
