// What every page shares: the session, calls to the public API through the console's
// proxy (/ui/api/call/...), and DOM helpers that never parse untrusted text as HTML.

export const session = { signedIn: false, csrf: "", role: "", label: "", userId: null, teamIds: [] };

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "text") el.textContent = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function field(label, input) {
  const id = input.id || `f-${label.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input);
}

export function input(name, attrs = {}) {
  return h("input", { name, type: "text", autocomplete: "off", ...attrs });
}

export function alertBox() {
  return h("p", { class: "alert", role: "alert", hidden: true });
}

// `result`: an api() answer (its error's message is shown) or a message of the page's own.
export function showError(box, result) {
  box.hidden = false;
  box.className = "alert error";
  box.textContent = typeof result === "string" ? result : errorText(result);
}

export function showOk(box, text) {
  box.hidden = false;
  box.className = "alert ok";
  box.textContent = text;
}

export function errorText(result) {
  const error = result && result.data && result.data.error;
  if (error && error.message) return error.message;
  return `request failed (HTTP ${result ? result.status : "?"})`;
}

async function send(url, method, body) {
  const headers = { "X-CSRF-Token": session.csrf };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(url, init);
}

// One call of the public API as the signed-in key: {status, ok, data, headers}.
export async function api(method, path, body) {
  const response = await send(`/ui/api/call${path}`, method, body);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (response.status === 401 && data && data.error && data.error.code === "console_signed_out") {
    location.hash = "#/signin";
  }
  return { status: response.status, ok: response.ok, data, headers: response.headers };
}

export async function apiStream(path, body) {
  return send(`/ui/api/call${path}`, "POST", body);
}

export async function loadSession() {
  const response = await fetch("/ui/api/session", { credentials: "same-origin" });
  const data = await response.json();
  Object.assign(session, {
    signedIn: !!data.signed_in, csrf: data.csrf_token || "", role: data.role || "",
    label: data.label || "", userId: data.user_id || null, teamIds: data.team_ids || [],
  });
  return session;
}

export async function signIn(key) {
  const response = await send("/ui/api/session", "POST", { key });
  const data = await response.json();
  if (!response.ok) return { status: response.status, ok: false, data };
  await loadSession();
  return { status: 200, ok: true, data };
}

export async function signOut() {
  await send("/ui/api/session/end", "POST", {});
  await loadSession();
}

// Roles, as docs/tenancy.md names them; the API decides, these only choose pages.
export const isAdmin = () => session.role === "proxy_admin";
export const readsAll = () => ["proxy_admin", "proxy_admin_viewer"].includes(session.role);
export const isTeamAdmin = () => session.teamIds.length > 0;
export const managesKeys = () => session.role !== "api_key";

export function money(value) {
  if (value === null || value === undefined) return "–";
  return `$${Number(value).toFixed(Number(value) < 1 ? 4 : 2)}`;
}

// "$spent / $budget", standing out from 80 % of the budget (as on the Keys page).
export function budgetCell(row) {
  const near = row.max_budget && Number(row.spend || 0) >= 0.8 * Number(row.max_budget);
  return h("span", { class: near ? "warn" : "" },
    `${money(row.spend || 0)} / ${row.max_budget == null ? "no budget" : money(row.max_budget)}`);
}

// "a, b" from a text field, as the API's list of names.
export const names = (text) => text.split(",").map((m) => m.trim()).filter(Boolean);

// What an edit form changes of a team's or a user's budget and model list, as the update
// APIs take it: `{ changes }`, or `{ error }` for a budget emptied (the API can change a
// budget, not remove one). `noun` names the thing in that message ("team", "user").
export function budgetAndModelChanges(current, budget, models, noun) {
  const changes = {};
  if (budget.value.trim() !== String(current.max_budget ?? "")) {
    if (budget.value.trim() === "") {
      return { error: `A ${noun}'s budget cannot be removed, only changed: enter a new one.` };
    }
    changes.max_budget = Number(budget.value);
  }
  const modelList = names(models.value);
  if (modelList.join(",") !== (current.models || []).join(",")) changes.models = modelList;
  return { changes };
}

export function when(value) {
  if (!value) return "–";
  return String(value).replace("T", " ").slice(0, 16);
}

// Previous / next over the API's pages; `go(page)` shows another one.
export function pager(page, pages, go, label) {
  return h("nav", { class: "pager", "aria-label": label },
    h("button", { type: "button", class: "secondary", disabled: page <= 1,
      onclick: () => go(page - 1) }, "Previous"),
    h("span", {}, ` page ${page} of ${pages} `),
    h("button", { type: "button", class: "secondary", disabled: page >= pages,
      onclick: () => go(page + 1) }, "Next"));
}

export function table(columns, rows, { caption, sortable = true } = {}) {
  // columns: [{label, value: row => sortable value, cell?: row => Node|string}]
  const body = h("tbody");
  let order = { index: -1, dir: 1 };
  const render = () => {
    body.replaceChildren();
    const sorted = [...rows];
    if (order.index >= 0) {
      const col = columns[order.index];
      sorted.sort((a, b) => {
        const x = col.value(a), y = col.value(b);
        return (x > y ? 1 : x < y ? -1 : 0) * order.dir;
      });
    }
    for (const row of sorted) {
      body.append(h("tr", {}, columns.map((c) => h("td", { "data-label": c.label },
        c.cell ? c.cell(row) : String(c.value(row) ?? "–")))));
    }
    if (!rows.length) body.append(h("tr", {}, h("td", { colspan: columns.length }, "Nothing yet.")));
  };
  const heads = columns.map((c, index) => {
    const th = h("th", { scope: "col" });
    if (!sortable || c.sort === false) { th.textContent = c.label; return th; }
    const button = h("button", { type: "button", class: "sort", onclick: () => {
      order = { index, dir: order.index === index ? -order.dir : 1 };
      heads.forEach((other) => other.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", order.dir > 0 ? "ascending" : "descending");
      render();
    } }, c.label);
    th.append(button);
    return th;
  });
  render();
  return h("div", { class: "table-wrap" }, h("table", {},
    caption ? h("caption", {}, caption) : null, h("thead", {}, h("tr", {}, heads)), body));
}

export function downloadCsv(name, header, rows) {
  const quote = (v) => {
    const s = v === null || v === undefined ? "" : String(v);
    // A leading = + - @ would run as a formula in a spreadsheet (CSV injection).
    const safe = /^[=+\-@]/.test(s) ? `'${s}` : s;
    return /[",\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
  };
  const text = [header, ...rows].map((r) => r.map(quote).join(",")).join("\n");
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// Colour-blind-safe (Okabe-Ito), each at least 3:1 against white.
export const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
  "#000000", "#999999"];

export function colour(datasets) {
  datasets.forEach((d, i) => {
    const c = PALETTE[i % PALETTE.length];
    d.borderColor = d.borderColor || c;
    d.backgroundColor = d.backgroundColor || c;
  });
  return datasets;
}

export function chart(canvas, config) {
  // Chart.js (vendored, MIT): the field's standard canvas charts.
  colour(config.data.datasets);
  return new window.Chart(canvas, { ...config, options: { responsive: true, animation: false,
    maintainAspectRatio: false, ...(config.options || {}) } });
}
