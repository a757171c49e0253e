// matrix-js-sdk flows against a running registrar, run by
// cmd/registrar/jsclient_test.go:  node flows.mjs SCENARIO BASE_URL [ARG]
// Each scenario throws (exit 1) on anything unexpected and prints one
// JSON line of what it did, for the Go test to check on the server.
import { createClient, InteractiveAuth, MatrixError } from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import {
  registerOidcClient,
  generateOidcAuthorizationUrl,
  completeAuthorizationCodeGrant,
  OidcTokenRefresher,
} from "matrix-js-sdk/lib/oidc/index.js";
import { createInterface } from "node:readline";

logger.setLevel("silent");

const [scenario, baseUrl, arg, arg2] = process.argv.slice(2);

function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
}

async function expectError(promise, errcode, what) {
  try {
    await promise;
  } catch (e) {
    check(e instanceof MatrixError && e.errcode === errcode, `${what}: got ${e.errcode ?? e}, want ${errcode}`);
    return e;
  }
  throw new Error(`${what}: succeeded, want ${errcode}`);
}

// register runs /register through InteractiveAuth: the dummy stage is
// completed by the SDK, a registration token stage by stateUpdated.
async function register(client, username, password, token) {
  let ia;
  ia = new InteractiveAuth({
    matrixClient: client,
    doRequest: (auth) => client.registerRequest({ username, password, auth: auth ?? undefined, initial_device_display_name: "js-sdk" }),
    stateUpdated: (stage) => {
      if (stage === "m.login.registration_token") {
        ia.submitAuthDict({ type: stage, token, session: ia.getSessionId() });
      }
    },
    requestEmailToken: async () => {
      throw new Error("no email stage expected");
    },
  });
  return ia.attemptAuth();
}

// reauthenticate runs an account operation that starts with "auth": null
// (as matrix-js-sdk sends it) and then answers the password stage.
async function reauthenticate(client, user, password, request) {
  let ia;
  ia = new InteractiveAuth({
    matrixClient: client,
    doRequest: (auth) => request(auth),
    stateUpdated: (stage) => {
      check(stage === "m.login.password", "stage " + stage);
      ia.submitAuthDict({ type: stage, identifier: { type: "m.id.user", user }, password, session: ia.getSessionId() });
    },
    requestEmailToken: async () => {
      throw new Error("no email stage expected");
    },
  });
  return ia.attemptAuth();
}

function clientFor(creds, extra = {}) {
  return createClient({ baseUrl, userId: creds.user_id, accessToken: creds.access_token, deviceId: creds.device_id, ...extra });
}

// A browser's storage, for the SDK's OIDC helpers (node has no window).
class MemoryStorage {
  constructor() { this.items = new Map(); }
  get length() { return this.items.size; }
  key(i) { return [...this.items.keys()][i] ?? null; }
  getItem(k) { return this.items.has(k) ? this.items.get(k) : null; }
  setItem(k, v) { this.items.set(k, String(v)); }
  removeItem(k) { this.items.delete(k); }
  clear() { this.items.clear(); }
}

// oidc signs in (or, with prompt "create", up) with the OAuth 2.0 API as
// Element Web does: discovery,
// dynamic registration, the authorisation URL (printed for the Go test,
// whose headless Chromium signs in and consents), then the code grant
// with the callback URL the Go test writes back; then whoami, a refresh
// and a revocation.
async function oidc(anon, redirectUri, prompt) {
  const origin = new URL(redirectUri).origin;
  globalThis.window = { sessionStorage: new MemoryStorage(), localStorage: new MemoryStorage(), location: { origin, href: origin } };
  const metadata = await anon.getAuthMetadata();
  check(metadata.issuer && metadata.registration_endpoint && metadata.code_challenge_methods_supported.includes("S256"), "metadata");
  const clientId = await registerOidcClient(metadata, {
    clientName: "js-sdk test", clientUri: "https://client.example.org/", applicationType: "native",
    redirectUris: [new URL("/callback", "http://127.0.0.1").href], contacts: [],
    tosUri: "https://client.example.org/tos", policyUri: "https://client.example.org/privacy",
  });
  const nonce = "nonce-" + Math.random().toString(36).slice(2);
  if (prompt) check((metadata.prompt_values_supported ?? []).includes(prompt), "prompt " + prompt + " supported");
  const authUrl = await generateOidcAuthorizationUrl({ metadata, redirectUri, clientId, homeserverUrl: baseUrl, nonce, prompt });
  console.log(JSON.stringify({ authUrl }));
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const callback = new URL((await lines.next()).value);
  const done = await completeAuthorizationCodeGrant(callback.searchParams.get("code"), callback.searchParams.get("state"));
  const tokens = done.tokenResponse;
  check(tokens.access_token && tokens.refresh_token && done.idTokenClaims.sub, "tokens and ID token");
  const deviceMatch = /device:(\S+)/.exec(tokens.scope);
  check(deviceMatch, "device scope " + tokens.scope);
  const client = createClient({ baseUrl, accessToken: tokens.access_token });
  const who = await client.whoami();
  check(who.device_id === deviceMatch[1], "whoami device " + who.device_id);

  const refresher = new OidcTokenRefresher(metadata.issuer, clientId, redirectUri, who.device_id, done.idTokenClaims);
  await refresher.oidcClientReady;
  const refreshed = await refresher.doRefreshAccessToken(tokens.refresh_token);
  check(refreshed.accessToken && refreshed.accessToken !== tokens.access_token, "refreshed");
  const fresh = createClient({ baseUrl, accessToken: refreshed.accessToken });
  check((await fresh.whoami()).user_id === who.user_id, "whoami after the refresh");

  const revoked = await fetch(metadata.revocation_endpoint, { method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token: refreshed.accessToken, token_type_hint: "access_token", client_id: clientId }) });
  check(revoked.status === 200, "revocation " + revoked.status);
  await expectError(fresh.whoami(), "M_UNKNOWN_TOKEN", "token after revocation");
  return { user: who.user_id, device: who.device_id, client_id: clientId, sub: done.idTokenClaims.sub };
}

async function main() {
  const anon = createClient({ baseUrl });
  const out = {};
  if (scenario === "account") {
    check(await anon.isUsernameAvailable("carol"), "carol available");
    const reg = await register(anon, "carol", "pw-carol-1");
    check(reg.user_id.startsWith("@carol:") && reg.access_token, "registered " + reg.user_id);
    check((await anon.isUsernameAvailable("carol")) === false, "carol taken");
    const carol = clientFor(reg);
    const who = await carol.whoami();
    check(who.user_id === reg.user_id && who.device_id === reg.device_id, "whoami");

    // A password change whose first request carries "auth": null.
    await reauthenticate(carol, "carol", "pw-carol-1", (auth) => carol.setPassword(auth, "pw-carol-2", false));
    await expectError(anon.loginWithPassword("carol", "pw-carol-1"), "M_FORBIDDEN", "old password");
    const second = await anon.loginWithPassword("carol", "pw-carol-2");
    check(second.user_id === reg.user_id, "new password logs in");
    const secondClient = clientFor(second);
    await secondClient.logout();
    await expectError(secondClient.whoami(), "M_UNKNOWN_TOKEN", "token after logout");

    // Deactivation, also starting with "auth": null.
    await reauthenticate(carol, "carol", "pw-carol-2", (auth) => carol.deactivateAccount(auth, true));
    await expectError(carol.whoami(), "M_UNKNOWN_TOKEN", "token after deactivation");
    await expectError(anon.loginWithPassword("carol", "pw-carol-2"), "M_USER_DEACTIVATED", "login after deactivation");

    const guest = await anon.registerGuest();
    const g = clientFor(guest);
    const gwho = await g.whoami();
    check(gwho.user_id === guest.user_id && gwho.is_guest === true, "guest whoami");
    out.user = reg.user_id;
    out.guest = guest.user_id;
  } else if (scenario === "token") {
    const reg = await register(anon, "dave", "pw-dave-1", arg);
    out.user = reg.user_id;
  } else if (scenario === "refresh") {
    // Access tokens live two seconds: the SDK refreshes on its own.
    const login = await anon.loginRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: arg },
      password: "pw-" + arg, refresh_token: true });
    check(login.refresh_token && login.expires_in_ms > 0, "login with a refresh token");
    let refreshes = 0;
    const refreshing = createClient({ baseUrl, userId: login.user_id, accessToken: login.access_token, refreshToken: login.refresh_token,
      tokenRefreshFunction: async (refreshToken) => {
        const r = await anon.refreshToken(refreshToken);
        refreshes++;
        return { accessToken: r.access_token, refreshToken: r.refresh_token, expiry: new Date(Date.now() + r.expires_in_ms) };
      } });
    await new Promise((r) => setTimeout(r, 2500));
    const who = await refreshing.whoami();
    check(who.user_id === login.user_id, "whoami after the refresh");
    check(refreshes === 1, "refreshed " + refreshes + " times");
    check(refreshing.getAccessToken() !== login.access_token, "a new access token");
    // The spent refresh token does not work again.
    await expectError(anon.refreshToken(login.refresh_token), "M_UNKNOWN_TOKEN", "reusing the first refresh token");
    out.refreshes = refreshes;
  } else if (scenario === "sso-url") {
    // The legacy m.login.sso flow, as a web client starts it: the login
    // flows offer the provider, and the SDK builds the redirect URL.
    const { flows } = await anon.loginFlows();
    const sso = flows.find((f) => f.type === "m.login.sso");
    check(sso && sso.identity_providers.some((p) => p.id === arg2), "m.login.sso offers " + arg2);
    check(flows.some((f) => f.type === "m.login.token"), "m.login.token is offered");
    out.url = anon.getSsoLoginUrl(arg, "sso", arg2, "login");
  } else if (scenario === "sso-login") {
    // ...and finishes it with the loginToken it was handed.
    const login = await anon.loginWithToken(arg);
    const client = createClient({ baseUrl, accessToken: login.access_token, userId: login.user_id });
    const who = await client.whoami();
    check(who.user_id === login.user_id && who.device_id === login.device_id, "whoami after the SSO login");
    out.user = login.user_id;
    out.device = login.device_id;
    await expectError(anon.loginWithToken(arg), "M_FORBIDDEN", "spending the login token twice");
  } else if (scenario === "second-factor") {
    // A password login of an account with a second factor: the SDK gets
    // registrar's errcode and message, and the login flows offer the
    // browser sign-in (m.login.sso) instead.
    const e = await expectError(anon.loginWithPassword(arg, arg2), "ORG.REGISTRAR.SECOND_FACTOR_REQUIRED", "password login with a factor");
    check(e.httpStatus === 403, "status " + e.httpStatus);
    out.message = e.message;
    const { flows } = await anon.loginFlows();
    check(flows.some((f) => f.type === "m.login.sso"), "m.login.sso offered");
    out.sso = anon.getSsoLoginUrl("https://app.example.org/done");
  } else if (scenario === "oidc") {
    out.oidc = await oidc(anon, arg, arg2);
  } else {
    throw new Error("unknown scenario " + scenario);
  }
  console.log(JSON.stringify(out));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e instanceof MatrixError ? `${e.errcode}: ${e.message} (${e.httpStatus})` : e.stack ?? e);
    process.exit(1);
  },
);
