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

// Passkeys and security keys (WebAuthn): buttons marked data-webauthn run
// a ceremony with registrar's JSON endpoints. Without WebAuthn (or without
// this script) the buttons stay hidden; the pages' forms still work.
(function () {
  "use strict";
  if (!window.PublicKeyCredential || !navigator.credentials) return;
  function fromB64(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function toB64(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function creationOptions(o) {
    var pk = o.publicKey;
    pk.challenge = fromB64(pk.challenge);
    pk.user.id = fromB64(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = fromB64(c.id); });
    return o;
  }
  function requestOptions(o) {
    var pk = o.publicKey;
    pk.challenge = fromB64(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = fromB64(c.id); });
    return o;
  }
  function credentialJSON(c) {
    var r = c.response, out = { id: c.id, rawId: toB64(c.rawId), type: c.type, response: { clientDataJSON: toB64(r.clientDataJSON) } };
    if (r.attestationObject) {
      out.response.attestationObject = toB64(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = toB64(r.authenticatorData);
      out.response.signature = toB64(r.signature);
      if (r.userHandle) out.response.userHandle = toB64(r.userHandle);
    }
    out.clientExtensionResults = c.getClientExtensionResults ? c.getClientExtensionResults() : {};
    if (c.authenticatorAttachment) out.authenticatorAttachment = c.authenticatorAttachment;
    return out;
  }
  function post(path, body) {
    return fetch(path, { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function (resp) {
        return resp.json().then(function (data) {
          if (!resp.ok) throw new Error(data.error || "HTTP " + resp.status);
          return data;
        });
      });
  }
  function fail(err) {
    var box = document.getElementById("passkey-error");
    if (box) {
      box.textContent = err && err.message ? err.message : String(err);
      box.hidden = false;
    }
  }
  function done(data) {
    if (data.location) { window.location.assign(data.location); return; }
    if (data.done) {
      if (window.onAuthDone) window.onAuthDone();
      else if (window.opener && window.opener.postMessage) window.opener.postMessage("authDone", "*");
      var main = document.querySelector("main .card");
      if (main) main.innerHTML = '<p id="done"></p>';
      var p = document.getElementById("done");
      if (p) p.textContent = document.documentElement.dataset.done || "Done.";
    }
  }
  document.querySelectorAll("button[data-webauthn]").forEach(function (button) {
    button.hidden = false;
    var kind = button.dataset.webauthn, csrf = button.dataset.csrf || "";
    button.addEventListener("click", function () {
      if (kind === "register") {
        post("/_registrar/webauthn/register/begin", { csrf: csrf })
          .then(function (o) {
            if (o.location) return o;
            return navigator.credentials.create(creationOptions(o)).then(function (c) {
              return post("/_registrar/webauthn/register/finish", { csrf: csrf, name: button.dataset.name || "", credential: credentialJSON(c) });
            });
          })
          .then(done, fail);
        return;
      }
      var begin = { csrf: csrf, purpose: kind === "uia" ? "uia" : kind, next: button.dataset.next || "", session: button.dataset.session || "" };
      post("/_registrar/webauthn/login/begin", begin)
        .then(function (o) { return navigator.credentials.get(requestOptions(o)); })
        .then(function (c) { return post("/_registrar/webauthn/login/finish", { csrf: csrf, credential: credentialJSON(c) }); })
        .then(done, fail);
    });
  });
})();
