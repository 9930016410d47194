// pipeserve's /docs page: Swagger UI on the server's own /openapi.json. A file of its own (not an
// inline script) so the page's Content-Security-Policy can allow scripts from 'self' only.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // "Try it out" open on every operation; requests go to this server (the document has no
    // `servers`, so Swagger UI uses the page's origin).
    tryItOutEnabled: true,
    // No request to validator.swagger.io: nothing leaves this server.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
