// The Switchyard console: sign in, then one view at a time from /console/api/<view>, everything it
// shows named in the URL's hash. Formatting is dom.js's, drawing views.js's.
"use strict";
(function () {
  const VIEWS = ["spend", "savings", "budgets", "top", "requests"];
  const CSRF_HEADER = "x-switchyard-csrf";
  const state = { session: null, csrf: null, tenants: null, seq: 0, charts: {} };
  const $ = (id) => document.getElementById(id);
  const { el } = window.SwitchyardConsole.dom;
  const { RENDER, destroyCharts, clearSpend } = window.SwitchyardConsole.views(state);

  // ---- the API ------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, options) {
    const opts = options || {};
    const headers = { accept: "application/json" };
    if (opts.method && opts.method !== "GET") headers[CSRF_HEADER] = state.csrf || "sign-in";
    if (opts.body) headers["content-type"] = "application/json";
    const res = await fetch(path, { method: opts.method || "GET", headers, credentials: "same-origin", cache: "no-store",
      body: opts.body ? JSON.stringify(opts.body) : undefined });
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (!res.ok) {
      const message = data && data.error ? data.error.message : res.status + " " + res.statusText;
      if (res.status === 401 && !opts.signingIn) showSignIn("Your session has ended: sign in again.");
      throw new ApiError(res.status, message);
    }
    return data;
  }

  // ---- sign-in ------------------------------------------------------------------------------------
  function showSignIn(message) {
    state.session = state.csrf = null;
    destroyCharts();
    $("app").hidden = true;
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
    document.body.dataset.rendered = "signin";
    $("signin-secret").focus();
  }

  function secretKind() {
    return document.querySelector("input[name=kind]:checked").value;
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $("signin-secret");
    const kind = secretKind();
    const secret = input.value;
    input.value = ""; // the key stays in this function's memory for one request, nowhere else
    $("signin-error").textContent = "";
    try {
      const session = await api("/console/api/session", { method: "POST", body: { [kind]: secret }, signingIn: true });
      await enter(session);
    } catch (e) {
      $("signin-error").textContent = e.message;
      document.body.dataset.rendered = "signin";
    }
  }

  async function signOut() {
    try { await api("/console/api/session", { method: "DELETE" }); } catch (_) { /* signed out either way */ }
    history.replaceState(null, "", location.pathname);
    showSignIn("Signed out.");
  }

  async function enter(session, early) {
    state.session = session;
    state.csrf = session.csrf_token;
    $("signin").hidden = true;
    $("app").hidden = false;
    $("who").textContent = session.kind === "operator" ? "Operator"
      : "Tenant " + session.tenant.name + " (key " + session.key_prefix + "…)";
    $("tenant-picker").hidden = session.kind !== "operator";
    // The operator's tenant list loads beside the first view, not before it.
    await Promise.all([session.kind === "operator" && state.tenants === null ? loadTenants() : null, render(early)]);
  }

  async function loadTenants() {
    const list = await api("/console/api/tenants");
    state.tenants = list.data;
    const select = $("tenant-select");
    select.replaceChildren(el("option", { value: "", text: "All tenants" }),
      ...list.data.map((t) => el("option", { value: t.id, text: t.name })));
    select.value = params().get("tenant") || "";
    document.body.dataset.tenants = String(list.data.length);
  }

  // ---- navigation: everything a view shows is in the URL's hash -------------------------------------
  function params() {
    return new URLSearchParams(location.hash.slice(1));
  }

  function monthSoFar() {
    const today = new Date().toISOString().slice(0, 10);
    return [today.slice(0, 8) + "01", today];
  }

  function setParam(name, value) {
    const p = params();
    if (value) p.set(name, value); else p.delete(name);
    location.hash = p.toString();
  }

  // The view and the API call the URL's hash asks for; before the session is known, a tenant named
  // in the hash is passed on (a tenant's session is refused it, and the view is asked again).
  function wanted() {
    const p = params();
    const view = VIEWS.includes(p.get("view")) ? p.get("view") : "spend";
    const [first, last] = monthSoFar();
    const query = new URLSearchParams({ from: p.get("from") || first, to: p.get("to") || last });
    if ((!state.session || state.session.kind === "operator") && p.get("tenant")) query.set("tenant", p.get("tenant"));
    if (view === "spend") query.set("by", p.get("by") || "model");
    return { p, view, query, path: "/console/api/" + view + "?" + query.toString() };
  }

  async function render(early) {
    if (!state.session) return;
    const { p, view, query, path } = wanted();
    $("from").value = query.get("from");
    $("to").value = query.get("to");
    if (state.session.kind === "operator") $("tenant-select").value = query.get("tenant") || "";
    if (view === "spend") $("spend-by").value = query.get("by");
    for (const a of document.querySelectorAll("#tabs a")) {
      a.classList.toggle("active", a.dataset.view === view);
      const link = new URLSearchParams(p);
      link.set("view", a.dataset.view);
      a.href = "#" + link.toString();
    }
    for (const v of VIEWS) $("view-" + v).hidden = v !== view;
    const seq = ++state.seq;
    document.body.dataset.rendered = "";
    document.body.dataset.users = "";
    if (view === "spend" && query.get("by") === "tag" && state.session.kind === "operator" && !query.get("tenant")) {
      // Tags are each tenant's own labels (the API answers them one tenant at a time).
      clearSpend("Tags are each tenant's own: pick a tenant to see its spend by tag.");
      finish(view, path);
      return;
    }
    try {
      // The first view's data was asked for beside the session, when the page loaded.
      const data = early && early.path === path ? await early.answer : await api(path);
      if (seq !== state.seq) return;
      RENDER[view](data);
      $("error").textContent = "";
    } catch (e) {
      if (seq !== state.seq || e.status === 401) return;
      $("error").textContent = e.message;
    }
    finish(view, path);
    if (view === "top" && (state.session.kind !== "operator" || query.get("tenant"))) loadUsers(seq, query);
  }

  function finish(view, path) {
    document.body.dataset.query = path;
    document.body.dataset.rendered = view;
    performance.mark("console-rendered");
  }

  // End users come from the ledger, not a rollup: asked for once the Top view is drawn.
  async function loadUsers(seq, query) {
    const path = "/console/api/users?" + query.toString();
    try {
      const data = await api(path);
      if (seq !== state.seq) return;
      RENDER.users(data);
    } catch (e) {
      if (seq !== state.seq || e.status === 401) return;
      $("top-users-note").textContent = e.message;
    }
    document.body.dataset.users = path;
    performance.mark("console-users-rendered");
  }

  // ---- wiring -------------------------------------------------------------------------------------
  function wire() {
    $("signin-form").addEventListener("submit", signIn);
    for (const radio of document.querySelectorAll("input[name=kind]")) {
      radio.addEventListener("change", () => {
        $("secret-label").textContent = secretKind() === "api_key" ? "API key" : "Admin token";
      });
    }
    $("signout").addEventListener("click", signOut);
    $("from").addEventListener("change", (e) => setParam("from", e.target.value));
    $("to").addEventListener("change", (e) => setParam("to", e.target.value));
    $("tenant-select").addEventListener("change", (e) => setParam("tenant", e.target.value));
    $("spend-by").addEventListener("change", (e) => setParam("by", e.target.value));
    window.addEventListener("hashchange", () => { render(); });
  }

  async function boot() {
    wire();
    // One round trip, not two: the view's data is asked for with the session, not after it.
    const first = wanted();
    const early = { path: first.path, answer: api(first.path, { signingIn: true }) };
    early.answer.catch(() => null); // a signed-out page's 401 is the session request's to report
    try {
      await enter(await api("/console/api/session", { signingIn: true }), early);
    } catch (e) {
      showSignIn(e.status === 401 ? "" : e.message);
    }
  }

  boot();
})();
