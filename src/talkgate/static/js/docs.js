// /docs: Swagger UI (served by talkgate from swagger-ui-dist) on talkgate's own OpenAPI document.
// A file rather than an inline script, so that the Content-Security-Policy needs no 'unsafe-inline'.
window.ui = window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false, // a pasted JWT is not kept in localStorage
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
