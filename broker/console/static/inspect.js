// Request inspector: a request id (from `x-request-id`) -> its spend row (/spend/logs):
// model, deployment, status, tokens, cost, and its life: admitted by the front door (the
// row's start), queued (the lane and the wait, from the row's metadata), the worker that
// ran it, each try at a deployment (status, latency, why it was made: retry or fallback,
// and whether it cooled the deployment down), and the final record the front door relays
// (the row's end). The API decides who may read it.
import { h, field, input, alertBox, showError, api, money, table, session, readsAll }
  from "./core.js";

const REASONS = { "": "first try", retry: "retry", fallback: "fallback" };

// A moment of the record to the millisecond (the pages' `when` stops at the minute).
function moment(value) {
  if (!value) return "–";
  const text = String(value);
  return text.replace("T", " ").slice(0, 23) + (text.endsWith("Z") ? " UTC" : "");
}

function afterAdmission(row) {
  const ms = Date.parse(row.end_time) - Date.parse(row.start_time);
  return Number.isFinite(ms) ? `, ${ms} ms after admission` : "";
}

function attemptsTable(attempts) {
  return table([
    { label: "#", value: (a) => a.n },
    { label: "Model group", value: (a) => a.model_group || "" },
    { label: "Deployment", value: (a) => a.deployment || "(none could take it)" },
    { label: "Status", value: (a) => a.status || "ok" },
    { label: "Latency ms", value: (a) => Number(a.latency_ms || 0),
      cell: (a) => Number(a.latency_ms || 0).toFixed(1) },
    { label: "Why", value: (a) => REASONS[a.reason || ""] ?? a.reason },
    { label: "Cooldown", value: (a) => (a.cooled_down ? "cooled down" : (a.detail || "")) },
  ], attempts.map((a, i) => ({ ...a, n: i + 1 })), { caption: "Attempts" });
}

// The row -> the life of the request, in order. A row written before the worker's part
// was kept has only its ends.
function life(row) {
  const meta = row.metadata || {};
  const attempts = meta.attempts || [];
  const steps = [h("li", { "data-testid": "admitted" },
    `Admitted by the front door at ${moment(row.start_time)}.`)];
  if (meta.queue) {
    steps.push(h("li", { "data-testid": "queued" },
      `Queued on lane ${meta.queue.lane || "?"}, waited ${meta.queue.waited_ms} ms for a worker.`));
    steps.push(h("li", { "data-testid": "worker" }, meta.worker
      ? `Run by worker ${meta.worker}.` : "Run by a worker this record does not name."));
  }
  if (attempts.length) {
    steps.push(h("li", {}, `Tried ${attempts.length} time${attempts.length === 1 ? "" : "s"}:`,
      attemptsTable(attempts)));
  }
  steps.push(h("li", { "data-testid": "relayed" }, `Answered (${row.status || "?"}): the ` +
    `worker's final record at ${moment(row.end_time)}${afterAdmission(row)}, which the front ` +
    "door relays as it arrives."));
  return [h("h2", {}, "Life"), h("ol", { class: "life" }, steps)];
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
