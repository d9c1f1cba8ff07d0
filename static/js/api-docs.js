// Starts Swagger UI (static/vendor/swagger-ui/) on the API docs page with the settings the page
// carries as a JSON data block (#swagger-settings), so the page needs no inline script.
(function () {
  "use strict";
  var holder = document.getElementById("swagger-settings");
  if (!holder || !window.SwaggerUIBundle) return;
  var settings = JSON.parse(holder.textContent);
  settings.dom_id = "#swagger-ui";
  settings.presets = [SwaggerUIBundle.presets.apis];
  settings.plugins = [SwaggerUIBundle.plugins.DownloadUrl];
  window.portalApiDocs = SwaggerUIBundle(settings);
})();
