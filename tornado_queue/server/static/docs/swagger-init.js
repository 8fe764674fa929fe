// Starts Swagger UI on /docs. A file of its own, not an inline script, so that the page works
// under a Content-Security-Policy of script-src 'self'.
//
// The bundled Swagger UI (4.15) renders only documents that say "openapi: 3.0.x"; the server's
// document is OpenAPI 3.1. Its schemas use little that 3.0 readers cannot show, so the page
// fetches it and relabels the version for display only: /openapi.json itself stays 3.1.
window.addEventListener("load", function () {
  fetch("/openapi.json", { headers: { Accept: "application/json" } })
    .then(function (response) {
      if (!response.ok) {
        throw new Error("GET /openapi.json answered " + response.status);
      }
      return response.json();
    })
    .then(function (spec) {
      spec.openapi = "3.0.3";
      window.ui = SwaggerUIBundle({
        spec: spec,
        dom_id: "#swagger-ui",
        deepLinking: true,
        presets: [SwaggerUIBundle.presets.apis],
        layout: "BaseLayout",
        // No badge fetched from the public validator: the page works offline.
        validatorUrl: null,
      });
    })
    .catch(function (error) {
      document.getElementById("swagger-ui").textContent =
        "Could not load the API description: " + error.message;
    });
});
