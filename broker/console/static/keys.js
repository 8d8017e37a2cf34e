// Keys: list, create (shown once), edit limits and budgets, block/unblock, regenerate, delete.
// Every action is the public API's (/key/*); its validation messages are shown as they come.
import { session, h, field, input, alertBox, showError, showOk, api, money, when, table,
  isTeamAdmin, pager } from "./core.js";

const LIMITS = [
  ["max_budget", "Max budget (USD)", "number"],
  ["soft_budget", "Soft budget (USD)", "number"],
  ["budget_duration", "Budget period (e.g. 30d)", "text"],
  ["rpm_limit", "Requests per minute", "number"],
  ["tpm_limit", "Tokens per minute", "number"],
  ["max_parallel_requests", "Parallel requests", "number"],
];

export const PAGE_SIZE = 100;

// One page of keys (the API's paging), plus the keys of the teams the caller administers.
// `filter`: more of /key/list's query (e.g. `&min_budget_percent=80`), for every call.
export async function listKeys(page = 1, filter = "") {
  const found = new Map();
  const calls = [`/key/list?return_full_object=true&size=${PAGE_SIZE}&page=${page}${filter}`];
  let pages = 1;
  let total = 0;
  if (isTeamAdmin()) {
    for (const team of session.teamIds) {
      calls.push(`/key/list?return_full_object=true&size=100&team_id=${encodeURIComponent(team)}${filter}`);
    }
  }
  let failure = null;
  for (const path of calls) {
    const result = await api("GET", path);
    if (!result.ok) { failure = failure || result; continue; }
    if (path === calls[0]) {
      pages = result.data.total_pages || 1;
      total = result.data.total_count || 0;
    }
    for (const key of result.data.keys || []) {
      if (typeof key === "object") found.set(key.token, key);
    }
  }
  return { keys: [...found.values()], failure, pages, total };
}

function status(key) {
  if (key.blocked) return "blocked";
  if (key.expires && new Date(key.expires) <= new Date()) return "expired";
  return "active";
}

// What "near its budget" means on every page: the share /key/list's min_budget_percent takes.
export const NEAR_BUDGET_PERCENT = 80;

function nearBudget(key) {
  return key.max_budget && Number(key.spend || 0) >= NEAR_BUDGET_PERCENT / 100 * Number(key.max_budget);
}

function limitsText(key) {
  const parts = [];
  if (key.rpm_limit) parts.push(`${key.rpm_limit} rpm`);
  if (key.tpm_limit) parts.push(`${key.tpm_limit} tpm`);
  if (key.max_parallel_requests) parts.push(`${key.max_parallel_requests} parallel`);
  return parts.join(", ") || "–";
}

function numbers(form, fields) {
  const body = {};
  for (const [name, , type] of fields) {
    const value = form.elements[name].value.trim();
    if (value === "") continue;
    body[name] = type === "number" ? Number(value) : value;
  }
  return body;
}

function secretBox(title, key) {
  const copy = h("button", { type: "button", onclick: async () => {
    try { await navigator.clipboard.writeText(key); copy.textContent = "Copied"; }
    catch { copy.textContent = "Select and copy"; }
  } }, "Copy");
  return h("div", { class: "card secret", role: "status" },
    h("h2", {}, title),
    h("p", {}, "This is the only time the key is shown. Store it now."),
    h("code", { class: "key", "data-testid": "new-key" }, key), copy);
}

function createForm(box, onDone) {
  const form = h("form", { class: "card", "aria-labelledby": "create-title" });
  const models = input("models", { placeholder: "gpt-4o, gpt-4o-mini (empty: all)" });
  form.append(
    h("h2", { id: "create-title" }, "Create a key"),
    h("div", { class: "grid" },
      field("Alias", input("key_alias", { id: "new-alias" })),
      field("Team", input("team_id", { id: "new-team" })),
      field("Models", models),
      field("Expires after (e.g. 30d)", input("duration", { id: "new-duration" })),
      LIMITS.map(([name, label, type]) =>
        field(label, input(name, { id: `new-${name}`, type, step: "any", min: "0" })))),
    h("button", { type: "submit" }, "Create key"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = numbers(form, LIMITS);
    for (const name of ["key_alias", "team_id", "duration"]) {
      const value = form.elements[name].value.trim();
      if (value) body[name] = value;
    }
    const list = models.value.split(",").map((m) => m.trim()).filter(Boolean);
    if (list.length) body.models = list;
    const result = await api("POST", "/key/generate", body);
    if (!result.ok) return showError(box, result);
    form.reset();
    onDone(secretBox(`Key ${result.data.key_alias || result.data.key_name} created`, result.data.key));
  });
  return form;
}

function editForm(key, box, onDone) {
  const form = h("form", { class: "card", "aria-label": `Edit ${key.key_alias || key.key_name}` },
    h("h2", {}, `Edit ${key.key_alias || key.key_name}`),
    h("div", { class: "grid" }, LIMITS.map(([name, label, type]) =>
      field(label, input(name, { id: `edit-${name}`, type, step: "any", min: "0",
        value: key[name] ?? "" })))),
    h("button", { type: "submit" }, "Save"),
    h("button", { type: "button", class: "secondary", onclick: () => onDone(null) }, "Cancel"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { key: key.token };
    for (const [name, , type] of LIMITS) {
      const value = form.elements[name].value.trim();
      const before = key[name] ?? "";
      if (value === String(before)) continue;
      body[name] = value === "" ? null : type === "number" ? Number(value) : value;
    }
    const result = await api("POST", "/key/update", body);
    if (!result.ok) return showError(box, result);
    showOk(box, "Saved.");
    onDone(null);
  });
  return form;
}

export async function keysPage(main) {
  const box = alertBox();
  const panel = h("div", { class: "panel", "aria-live": "polite" });
  const listing = h("section", { "aria-labelledby": "keys-title" });
  main.append(h("h1", { id: "keys-title" }, "Keys"), box, panel, listing);

  const action = async (path, body, done) => {
    const result = await api("POST", path, body);
    if (!result.ok) return showError(box, result);
    showOk(box, done);
    if (result.data && result.data.key && path === "/key/regenerate") {
      panel.replaceChildren(secretBox("New key", result.data.key));
    }
    refresh();
  };

  const actions = (key) => {
    const name = key.key_alias || key.key_name;
    const blocked = !!key.blocked;
    const del = h("button", { type: "button", class: "danger" }, "Delete");
    del.addEventListener("click", () => {
      if (del.dataset.armed) return action("/key/delete", { keys: [key.token] }, `Deleted ${name}.`);
      del.dataset.armed = "1";
      del.textContent = "Confirm delete";
    });
    return h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => panel.replaceChildren(
        editForm(key, box, () => { panel.replaceChildren(); refresh(); })) }, "Edit"),
      h("button", { type: "button", onclick: () => action(blocked ? "/key/unblock" : "/key/block",
        { key: key.token }, `${blocked ? "Unblocked" : "Blocked"} ${name}.`) },
        blocked ? "Unblock" : "Block"),
      h("button", { type: "button", onclick: () =>
        action("/key/regenerate", { key: key.token }, `Regenerated ${name}.`) }, "Regenerate"),
      del);
  };

  let page = 1;
  async function refresh() {
    const { keys, failure, pages, total } = await listKeys(page);
    if (failure && !keys.length) showError(box, failure);
    const pages_ = pager(page, pages, (p) => { page = p; refresh(); }, "Key pages");
    listing.replaceChildren(pages > 1 ? pages_ : "", table([
      { label: "Alias", value: (k) => k.key_alias || "" },
      { label: "Key", value: (k) => k.key_name || "" },
      { label: "Team", value: (k) => k.team_id || "" },
      { label: "Models", value: (k) => (k.models || []).join(", ") || "all" },
      { label: "Spend / budget", value: (k) => Number(k.spend || 0), cell: (k) => h("span",
        { class: nearBudget(k) ? "warn" : "" },
        `${money(k.spend || 0)} / ${k.max_budget == null ? "no budget" : money(k.max_budget)}`) },
      { label: "Limits", value: limitsText },
      { label: "Last used", value: (k) => when(k.last_active) },
      { label: "Status", value: status, cell: (k) => h("span", { class: `badge ${status(k)}` }, status(k)) },
      { label: "Actions", value: () => "", sort: false, cell: actions },
    ], keys, { caption: `${total || keys.length} key${(total || keys.length) === 1 ? "" : "s"}` }));
  }

  main.insertBefore(createForm(box, (secret) => { panel.replaceChildren(secret); refresh(); }), listing);
  await refresh();
}
