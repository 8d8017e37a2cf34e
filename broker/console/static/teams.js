// Teams: members and roles, budgets, model lists (the /team/* API). The API decides every
// change (a team admin may rename its team, only a proxy admin may change its budget or
// models); its refusals and validation messages are shown as they come.
import { session, h, field, input, alertBox, showError, showOk, api, table, budgetCell,
  names, isAdmin, budgetAndModelChanges } from "./core.js";

const TEAM_ROLES = ["user", "admin"];

function roleSelect(id, label, current) {
  return h("select", { name: "role", id, "aria-label": label },
    TEAM_ROLES.map((r) => h("option", { value: r, selected: r === current }, r)));
}

// Alias, budget and models; only the fields changed are sent. The API reads a null as "not
// given", so a budget once set cannot be removed: say so rather than send a no-op.
function editTeamForm(info, box, done) {
  const alias = input("team_alias", { id: "edit-team-alias", value: info.team_alias ?? "" });
  const budget = input("max_budget", { id: "edit-team-budget", type: "number", step: "any",
    min: "0", value: info.max_budget ?? "" });
  const models = input("models", { id: "edit-team-models", placeholder: "empty: all",
    value: (info.models || []).join(", ") });
  const form = h("form", { class: "card", "aria-labelledby": "edit-team-title" },
    h("h2", { id: "edit-team-title" }, "Edit the team"),
    h("div", { class: "grid" }, field("Alias", alias), field("Max budget (USD)", budget),
      field("Models", models)),
    h("button", { type: "submit" }, "Save team"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { changes, error } = budgetAndModelChanges(info, budget, models, "team");
    if (error) return showError(box, error);
    const body = { team_id: info.team_id, ...changes };
    if (alias.value.trim() !== (info.team_alias ?? "")) body.team_alias = alias.value.trim();
    if (Object.keys(body).length === 1) return showOk(box, "Nothing changed.");
    const result = await api("POST", "/team/update", body);
    if (!result.ok) return showError(box, result);
    showOk(box, `Saved team ${info.team_alias || info.team_id}.`);
    done();
  });
  return form;
}

function membersTable(teamId, members, manage, box, done) {
  const setRole = (m) => {
    const who = m.user_id || m.user_email;
    const select = roleSelect(`role-${who}`, `Role of ${who}`, m.role);
    const save = h("button", { type: "button", class: "secondary", onclick: async () => {
      const result = await api("POST", "/team/member_update",
        { team_id: teamId, user_id: m.user_id, role: select.value });
      if (!result.ok) return showError(box, result);
      showOk(box, `${who} is now ${result.data.role}.`);
      done();
    } }, "Set role");
    const remove = h("button", { type: "button", class: "danger", onclick: async () => {
      const gone = await api("POST", "/team/member_delete", { team_id: teamId, user_id: m.user_id });
      if (!gone.ok) return showError(box, gone);
      showOk(box, `Removed ${who}.`);
      done();
    } }, "Remove");
    return h("div", { class: "actions" }, select, save, remove);
  };
  return table([
    { label: "Member", value: (m) => m.user_id || m.user_email || "" },
    { label: "Role", value: (m) => m.role },
    ...(manage ? [{ label: "Change", value: () => "", sort: false, cell: setRole }] : []),
  ], members, { caption: "Members" });
}

function addMemberForm(teamId, box, done) {
  const userId = input("user_id", { id: "member-user" });
  const role = roleSelect("member-role", null, "user");
  return h("form", { class: "inline", onsubmit: async (event) => {
    event.preventDefault();
    const added = await api("POST", "/team/member_add",
      { team_id: teamId, member: { user_id: userId.value.trim(), role: role.value } });
    if (!added.ok) return showError(box, added);
    showOk(box, `Added ${userId.value.trim()}.`);
    done();
  } }, field("User id", userId), field("Role", role), h("button", { type: "submit" }, "Add member"));
}

async function teamDetail(teamId, box, reopen) {
  const result = await api("GET", `/team/info?team_id=${encodeURIComponent(teamId)}`);
  if (!result.ok) { showError(box, result); return h("div"); }
  const info = result.data.team_info || {};
  const manage = isAdmin() || session.teamIds.includes(teamId);
  const done = () => reopen(teamId);
  return h("section", { class: "card", "aria-labelledby": "team-title" },
    h("h2", { id: "team-title" }, `Team ${info.team_alias || teamId}`),
    h("p", { "data-testid": "team-summary" }, "Budget: ", budgetCell(info),
      ` · models: ${(info.models || []).join(", ") || "all"}`),
    membersTable(teamId, info.members_with_roles || [], manage, box, done),
    manage ? addMemberForm(teamId, box, done) : null,
    manage ? editTeamForm({ ...info, team_id: teamId }, box, done) : null);
}

function createTeamForm(box, done) {
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
    const models = names(form.elements.models.value);
    if (models.length) body.models = models;
    const result = await api("POST", "/team/new", body);
    if (!result.ok) return showError(box, result);
    showOk(box, `Created team ${result.data.team_id}.`);
    form.reset();
    done();
  });
  return form;
}

export async function teamsPage(main) {
  const box = alertBox();
  const detail = h("div");
  const listing = h("section");
  main.append(h("h1", {}, "Teams"), box, detail, listing);
  const open = async (teamId) => {
    detail.replaceChildren(await teamDetail(teamId, box, open));
    refresh();
  };
  if (isAdmin()) main.insertBefore(createTeamForm(box, () => refresh()), listing);

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
