// Swagger UI for the JSON API (the page loads Swagger UI's bundle first). The document comes from
// the dashboard, under the same sign-in; requests tried here carry the token given to Authorize.
(function () {
  'use strict'
  var root = document.getElementById('swagger-ui')
  if (!root || typeof window.SwaggerUIBundle !== 'function') return
  window.SwaggerUIBundle({
    url: root.getAttribute('data-spec'),
    domNode: root,
    deepLinking: false,
    persistAuthorization: false,
    tryItOutEnabled: false
  })
})()
