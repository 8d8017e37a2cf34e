// Request inspector: a request id (from `x-request-id`) -> its spend row (/spend/logs):
// model, deployment, status, tokens, cost, start and end. The API decides who may read it.
import { h, field, input, alertBox, showError, api, money } from "./core.js";

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
    const result = await api("GET", `/spend/logs?request_id=${encodeURIComponent(rid)}&limit=1`);
    if (!result.ok) return showError(box, result);
    const row = (result.data || [])[0];
    if (!row) {
      out.append(h("p", {}, "No record of this request yet: its row is written when it finishes."));
      return;
    }
    out.append(h("dl", { class: "record" }, SHOWN.filter(([k]) => row[k] !== undefined && row[k] !== null)
      .map(([k, label]) => [h("dt", {}, label), h("dd", {}, k === "spend" ? money(row[k]) : String(row[k]))])));
  }
  if (given) await look();
}
