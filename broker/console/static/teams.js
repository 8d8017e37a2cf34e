// Teams and users: members and roles, budgets, model lists (the /team/* and /user/* API).
import { session, h, field, input, alertBox, showError, showOk, api, money, table,
  isAdmin } from "./core.js";

const list = (text) => text.split(",").map((m) => m.trim()).filter(Boolean);

function budgetCell(row) {
  const near = row.max_budget && Number(row.spend || 0) >= 0.8 * Number(row.max_budget);
  return h("span", { class: near ? "warn" : "" },
    `${money(row.spend || 0)} / ${row.max_budget == null ? "no budget" : money(row.max_budget)}`);
}

async function teamDetail(teamId, box, back) {
  const result = await api("GET", `/team/info?team_id=${encodeURIComponent(teamId)}`);
  if (!result.ok) { showError(box, result); return h("div"); }
  const info = result.data.team_info || {};
  const members = info.members_with_roles || [];
  const manage = isAdmin() || session.teamIds.includes(teamId);
  const userId = input("user_id", { id: "member-user" });
  const role = h("select", { name: "role", id: "member-role" },
    h("option", { value: "user" }, "user"), h("option", { value: "admin" }, "admin"));
  const addForm = h("form", { class: "inline", onsubmit: async (event) => {
    event.preventDefault();
    const added = await api("POST", "/team/member_add",
      { team_id: teamId, member: { user_id: userId.value.trim(), role: role.value } });
    if (!added.ok) return showError(box, added);
    showOk(box, `Added ${userId.value.trim()}.`);
    back(teamId);
  } }, field("User id", userId), field("Role", role), h("button", { type: "submit" }, "Add member"));
  const remove = (m) => h("button", { type: "button", class: "danger", onclick: async () => {
    const gone = await api("POST", "/team/member_delete", { team_id: teamId, user_id: m.user_id });
    if (!gone.ok) return showError(box, gone);
    showOk(box, `Removed ${m.user_id}.`);
    back(teamId);
  } }, "Remove");
  return h("section", { class: "card", "aria-labelledby": "team-title" },
    h("h2", { id: "team-title" }, `Team ${info.team_alias || teamId}`),
    h("p", {}, `Budget: `, budgetCell(info), ` · models: ${(info.models || []).join(", ") || "all"}`),
    table([
      { label: "Member", value: (m) => m.user_id || m.user_email || "" },
      { label: "Role", value: (m) => m.role },
      ...(manage ? [{ label: "", value: () => "", sort: false, cell: remove }] : []),
    ], members, { caption: "Members" }),
    manage ? addForm : null);
}

export async function teamsPage(main) {
  const box = alertBox();
  const detail = h("div");
  const listing = h("section");
  main.append(h("h1", {}, "Teams"), box, detail, listing);
  const open = async (teamId) => detail.replaceChildren(await teamDetail(teamId, box, open));

  if (isAdmin()) {
    const form = h("form", { class: "card", "aria-labelledby": "new-team" },
      h("h2", { id: "new-team" }, "Create a team"),
      h("div", { class: "grid" },
        field("Team id", input("team_id", { id: "team-id" })),
        field("Alias", input("team_alias", { id: "team-alias" })),
        field("Max budget (USD)", input("max_budget", { id: "team-budget", type: "number", step: "any", min: "0" })),
        field("Models", input("models", { id: "team-models", placeholder: "empty: all" }))),
      h("button", { type: "submit" }, "Create team"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {};
      for (const name of ["team_id", "team_alias"]) {
        const v = form.elements[name].value.trim();
        if (v) body[name] = v;
      }
      if (form.elements.max_budget.value) body.max_budget = Number(form.elements.max_budget.value);
      const models = list(form.elements.models.value);
      if (models.length) body.models = models;
      const result = await api("POST", "/team/new", body);
      if (!result.ok) return showError(box, result);
      showOk(box, `Created team ${result.data.team_id}.`);
      form.reset();
      refresh();
    });
    main.insertBefore(form, listing);
  }

  async function refresh() {
    const result = await api("GET", "/team/list");
    let teams = [];
    if (result.ok) teams = Array.isArray(result.data) ? result.data : result.data.teams || [];
    else if (session.teamIds.length) teams = session.teamIds.map((team_id) => ({ team_id }));
    else showError(box, result);
    listing.replaceChildren(table([
      { label: "Team", value: (t) => t.team_id, cell: (t) => h("button", { type: "button",
        class: "link", onclick: () => open(t.team_id) }, t.team_alias || t.team_id) },
      { label: "Models", value: (t) => (t.models || []).join(", ") || "all" },
      { label: "Spend / budget", value: (t) => Number(t.spend || 0), cell: budgetCell },
      { label: "Blocked", value: (t) => (t.blocked ? "yes" : "no") },
    ], teams, { caption: `${teams.length} team${teams.length === 1 ? "" : "s"}` }));
  }
  await refresh();
}

export async function usersPage(main) {
  const box = alertBox();
  const listing = h("section");
  const secret = h("div", { "aria-live": "polite" });
  main.append(h("h1", {}, "Users"), box, secret, listing);
  if (isAdmin()) {
    const role = h("select", { name: "user_role", id: "user-role" }, ["internal_user",
      "internal_user_viewer", "proxy_admin_viewer", "proxy_admin"].map((r) => h("option", { value: r }, r)));
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
      refresh();
    });
    main.insertBefore(form, listing);
  }
  let page = 1;
  async function refresh() {
    const result = await api("GET", `/user/list?page_size=100&page=${page}`);
    if (!result.ok) return showError(box, result);
    const users = result.data.users || [];
    const pages = result.data.total_pages || 1;
    const pager = h("nav", { class: "pager", "aria-label": "User pages" },
      h("button", { type: "button", class: "secondary", disabled: page <= 1,
        onclick: () => { page -= 1; refresh(); } }, "Previous"),
      h("span", {}, ` page ${page} of ${pages} `),
      h("button", { type: "button", class: "secondary", disabled: page >= pages,
        onclick: () => { page += 1; refresh(); } }, "Next"));
    listing.replaceChildren(pages > 1 ? pager : "", table([
      { label: "User", value: (u) => u.user_id },
      { label: "Email", value: (u) => u.user_email || "" },
      { label: "Role", value: (u) => u.user_role || "" },
      { label: "Models", value: (u) => (u.models || []).join(", ") || "all" },
      { label: "Spend / budget", value: (u) => Number(u.spend || 0), cell: budgetCell },
    ], users, { caption: `${result.data.total ?? users.length} users` }));
  }
  await refresh();
}
