// Users: roles, budgets, model lists (the /user/* API): create (its key shown once), edit,
// delete. Only a proxy admin may change users; the API's messages are shown as they come.
import { h, field, input, alertBox, showError, showOk, api, table, budgetCell, pager,
  isAdmin, budgetAndModelChanges } from "./core.js";

const ROLES = ["internal_user", "internal_user_viewer", "proxy_admin_viewer", "proxy_admin"];

function roleSelect(id, current) {
  return h("select", { name: "user_role", id },
    ROLES.map((r) => h("option", { value: r, selected: r === current }, r)));
}

function createUserForm(box, secret, done) {
  const role = roleSelect("user-role", "internal_user");
  const form = h("form", { class: "card", "aria-labelledby": "new-user" },
    h("h2", { id: "new-user" }, "Create a user"),
    h("div", { class: "grid" },
      field("User id", input("user_id", { id: "user-id" })),
      field("Email", input("user_email", { id: "user-email", type: "email" })),
      field("Role", role),
      field("Max budget (USD)", input("max_budget", { id: "user-budget", type: "number", step: "any", min: "0" }))),
    h("button", { type: "submit" }, "Create user"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { user_role: role.value };
    for (const name of ["user_id", "user_email"]) {
      const v = form.elements[name].value.trim();
      if (v) body[name] = v;
    }
    if (form.elements.max_budget.value) body.max_budget = Number(form.elements.max_budget.value);
    const result = await api("POST", "/user/new", body);
    if (!result.ok) return showError(box, result);
    showOk(box, `Created user ${result.data.user_id}.`);
    if (result.data.key) {
      secret.replaceChildren(h("div", { class: "card secret", role: "status" },
        h("p", {}, "The user's key, shown once:"), h("code", { class: "key" }, result.data.key)));
    }
    form.reset();
    done();
  });
  return form;
}

// Role, budget and models; only the fields changed are sent (a null is "not given" to the
// API, so a budget once set is changed, never removed).
function editUserForm(user, box, done) {
  const role = roleSelect("edit-user-role", user.user_role);
  const budget = input("max_budget", { id: "edit-user-budget", type: "number", step: "any",
    min: "0", value: user.max_budget ?? "" });
  const models = input("models", { id: "edit-user-models", placeholder: "empty: all",
    value: (user.models || []).join(", ") });
  const form = h("form", { class: "card", "aria-labelledby": "edit-user-title" },
    h("h2", { id: "edit-user-title" }, `Edit ${user.user_id}`),
    h("div", { class: "grid" }, field("Role", role), field("Max budget (USD)", budget),
      field("Models", models)),
    h("button", { type: "submit" }, "Save user"),
    h("button", { type: "button", class: "secondary", onclick: () => done(false) }, "Cancel"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { changes, error } = budgetAndModelChanges(user, budget, models, "user");
    if (error) return showError(box, error);
    const body = { user_id: user.user_id, ...changes };
    if (role.value !== user.user_role) body.user_role = role.value;
    if (Object.keys(body).length === 1) return showOk(box, "Nothing changed.");
    const result = await api("POST", "/user/update", body);
    if (!result.ok) return showError(box, result);
    showOk(box, `Saved ${user.user_id}.`);
    done(true);
  });
  return form;
}

export async function usersPage(main) {
  const box = alertBox();
  const panel = h("div", { "aria-live": "polite" });
  const listing = h("section");
  main.append(h("h1", {}, "Users"), box, panel, listing);
  if (isAdmin()) main.insertBefore(createUserForm(box, panel, () => refresh()), listing);

  const actions = (user) => {
    const edit = h("button", { type: "button", onclick: () => panel.replaceChildren(
      editUserForm(user, box, (changed) => { panel.replaceChildren(); if (changed) refresh(); })) },
    "Edit");
    // Two clicks: deleting a user deletes its keys too (as in LiteLLM).
    const del = h("button", { type: "button", class: "danger" }, "Delete");
    del.addEventListener("click", async () => {
      if (!del.dataset.armed) {
        del.dataset.armed = "1";
        del.textContent = "Confirm: delete with its keys";
        return;
      }
      const result = await api("POST", "/user/delete", { user_ids: [user.user_id] });
      if (!result.ok) return showError(box, result);
      showOk(box, `Deleted ${user.user_id} and its keys.`);
      refresh();
    });
    return h("div", { class: "actions" }, edit, del);
  };

  let page = 1;
  async function refresh() {
    const result = await api("GET", `/user/list?page_size=100&page=${page}`);
    if (!result.ok) return showError(box, result);
    const users = result.data.users || [];
    const pages = result.data.total_pages || 1;
    listing.replaceChildren(
      pages > 1 ? pager(page, pages, (p) => { page = p; refresh(); }, "User pages") : "",
      table([
        { label: "User", value: (u) => u.user_id },
        { label: "Email", value: (u) => u.user_email || "" },
        { label: "Role", value: (u) => u.user_role || "" },
        { label: "Models", value: (u) => (u.models || []).join(", ") || "all" },
        { label: "Spend / budget", value: (u) => Number(u.spend || 0), cell: budgetCell },
        ...(isAdmin() ? [{ label: "Actions", value: () => "", sort: false, cell: actions }] : []),
      ], users, { caption: `${result.data.total ?? users.length} users` }));
  }
  await refresh();
}
