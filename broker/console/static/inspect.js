// Request inspector: a request id (from `x-request-id`) -> its spend row (/spend/logs):
// model, deployment, status, tokens, cost, start and end, and its life from the row's
// metadata: the lane it waited on and how long, then each try at a deployment (status,
// latency, why it was made: retry or fallback, and whether it cooled the deployment down).
// The API decides who may read it.
import { h, field, input, alertBox, showError, api, money, table, session, readsAll }
  from "./core.js";

const REASONS = { "": "first try", retry: "retry", fallback: "fallback" };

// The row's metadata -> the life of the request: queued, then each attempt, then relayed.
function life(row) {
  const meta = row.metadata || {};
  const parts = [];
  if (meta.queue) {
    parts.push(h("p", { "data-testid": "queued" },
      `Queued on lane ${meta.queue.lane || "?"}, waited ${meta.queue.waited_ms} ms for a worker.`));
  }
  const attempts = meta.attempts || [];
  if (attempts.length) {
    parts.push(table([
      { label: "#", value: (a) => a.n },
      { label: "Model group", value: (a) => a.model_group || "" },
      { label: "Deployment", value: (a) => a.deployment || "(none could take it)" },
      { label: "Status", value: (a) => a.status || "ok" },
      { label: "Latency ms", value: (a) => Number(a.latency_ms || 0),
        cell: (a) => Number(a.latency_ms || 0).toFixed(1) },
      { label: "Why", value: (a) => REASONS[a.reason || ""] ?? a.reason },
      { label: "Cooldown", value: (a) => (a.cooled_down ? "cooled down" : (a.detail || "")) },
    ], attempts.map((a, i) => ({ ...a, n: i + 1 })), { caption: "Attempts" }));
  }
  return parts;
}

const SHOWN = [
  ["request_id", "Request id"], ["status", "Status"], ["model", "Model"],
  ["model_group", "Model group"], ["deployment", "Deployment"], ["provider", "Provider"],
  ["start_time", "Started"], ["end_time", "Ended"], ["prompt_tokens", "Prompt tokens"],
  ["completion_tokens", "Completion tokens"], ["total_tokens", "Total tokens"],
  ["spend", "Cost"], ["key_alias", "Key"], ["team_id", "Team"], ["endpoint", "Endpoint"],
];

export async function inspectPage(main, [given]) {
  const box = alertBox();
  const id = input("request_id", { id: "inspect-id", value: given || "", placeholder: "req_..." });
  const out = h("section", { "aria-live": "polite" });
  const form = h("form", { class: "card inline", onsubmit: (e) => { e.preventDefault(); look(); } },
    field("Request id", id), h("button", { type: "submit" }, "Inspect"));
  main.append(h("h1", {}, "Request inspector"), form, box, out);

  async function look() {
    box.hidden = true;
    out.replaceChildren();
    const rid = id.value.trim();
    if (!rid) return;
    const path = `/spend/logs?request_id=${encodeURIComponent(rid)}&limit=1`;
    const result = await api("GET", path);
    if (!result.ok) return showError(box, result);
    let row = (result.data || [])[0];
    // Without a team, the API answers a team admin's own requests: ask for each of its teams.
    for (const team of readsAll() ? [] : session.teamIds) {
      if (row) break;
      const more = await api("GET", `${path}&team_id=${encodeURIComponent(team)}`);
      if (more.ok) row = (more.data || [])[0];
    }
    if (!row) {
      out.append(h("p", {}, "No record of this request yet: its row is written when it finishes."));
      return;
    }
    out.append(h("dl", { class: "record" }, SHOWN.filter(([k]) => row[k] !== undefined && row[k] !== null)
      .map(([k, label]) => [h("dt", {}, label), h("dd", {}, k === "spend" ? money(row[k]) : String(row[k]))])));
    out.append(...life(row));
  }
  if (given) await look();
}
