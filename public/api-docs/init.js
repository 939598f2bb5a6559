// Starts Swagger UI (npm's swagger-ui-dist, copied here by build_site) on the server's own
// description. A file, not an inline script: the page's Content-Security-Policy runs no inline code.
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
