// registrar's pages work without this file: it only adds niceties.
// A "Show" button beside each password field.
(function () {
  "use strict";
  var labels = document.documentElement.dataset;
  document.querySelectorAll("input[type=password]").forEach(function (input) {
    var wrap = document.createElement("div");
    wrap.className = "password-wrap";
    input.parentNode.insertBefore(wrap, input);
    wrap.appendChild(input);
    var button = document.createElement("button");
    button.type = "button";
    button.className = "reveal";
    button.textContent = labels.show || "Show";
    button.setAttribute("aria-controls", input.id);
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", function () {
      var shown = input.type === "text";
      input.type = shown ? "password" : "text";
      button.textContent = shown ? (labels.show || "Show") : (labels.hide || "Hide");
      button.setAttribute("aria-pressed", String(!shown));
    });
    wrap.appendChild(button);
  });
})();
