// Models: each model group the key may call with its deployments (LiteLLM's /model/info,
// never a secret; its prices and context window: the config's, else the built-in price
// table's, marked as such), falling back to /v1/models, and for an admin each deployment's live health from /metrics; then how each
// group is routed (/model/info's model_groups: strategy, retries, cooldown, fallbacks).
import { h, alertBox, showError, api, table, readsAll } from "./core.js";
import { parseMetrics } from "./live.js";

const perMillion = (v) => (v === null || v === undefined ? "–" : `$${(v * 1e6).toFixed(2)}`);
const count = (v) => (v ? Number(v).toLocaleString() : "–");
const TABLE_MARK = " (table)";

// A figure of the deployment's model_info, marked when it is the price table's, not the config's.
function figure(r, name, format) {
  const value = r.model_info[name];
  const fromTable = (r.model_info.from_price_table || []).includes(name);
  return fromTable && value !== null && value !== undefined ? format(value) + TABLE_MARK : format(value);
}

async function health() {
  const byDeployment = new Map();
  if (!readsAll()) return byDeployment;
  const metrics = await api("GET", "/metrics");
  if (!metrics.ok) return byDeployment;
  for (const x of parseMetrics(metrics.data || "")) {
    if (!x.labels.deployment) continue;
    const id = `${x.labels.model_group}|${x.labels.deployment}`;
    const row = byDeployment.get(id) || {};
    if (x.name === "switchboard_deployment_cooldown_remaining_seconds") row.cooldown = x.value;
    if (x.name === "switchboard_deployment_in_flight_requests") row.inflight = x.value;
    byDeployment.set(id, row);
  }
  return byDeployment;
}

export async function modelsPage(main) {
  const box = alertBox();
  main.append(h("h1", {}, "Models"), box);
  let rows = [];
  let routing = [];
  const result = await api("GET", "/model/info");
  if (result.ok) {
    rows = result.data.data || [];
    routing = result.data.model_groups || [];
  } else {
    const groups = await api("GET", "/v1/models");
    if (!groups.ok) return showError(box, groups);
    rows = (groups.data.data || []).map((m) => ({ model_name: m.id, litellm_params: {},
      model_info: {} }));
  }
  const live = await health();
  const state = (r) => {
    const figures = live.get(`${r.model_name}|${r.model_info.id}`);
    if (!figures) return "–";
    return `${figures.cooldown ? "cooling down" : "healthy"}, ${figures.inflight ?? 0} in flight`;
  };
  const groups = new Set(rows.map((r) => r.model_name));
  main.append(table([
    { label: "Model group", value: (r) => r.model_name },
    { label: "Deployment", value: (r) => r.model_info.id || "–" },
    { label: "Model", value: (r) => r.litellm_params.model || "–" },
    { label: "Input / 1M tokens", value: (r) => r.model_info.input_cost_per_token ?? -1,
      cell: (r) => figure(r, "input_cost_per_token", perMillion) },
    { label: "Output / 1M tokens", value: (r) => r.model_info.output_cost_per_token ?? -1,
      cell: (r) => figure(r, "output_cost_per_token", perMillion) },
    { label: "Context window", value: (r) => r.model_info.max_input_tokens ?? 0,
      cell: (r) => figure(r, "max_input_tokens", count) },
    { label: "Max output", value: (r) => r.model_info.max_output_tokens ?? 0,
      cell: (r) => figure(r, "max_output_tokens", count) },
    { label: "Health", value: state },
  ], rows, { caption: `${groups.size} model groups this key may call, ${rows.length} deployments` }));
  if (rows.some((r) => (r.model_info.from_price_table || []).length)) {
    main.append(h("p", { class: "note" }, "(table): the built-in price table's figure for the "
      + "deployment's model, where the config gives none; requests are charged by the same."));
  }
  if (routing.length) main.append(routingTable(routing));
}

const seconds = (v) => (v === null || v === undefined ? "none" : `${v} s`);
const groupsText = (list) => (list && list.length ? list.join(" → ") : "none");

// The strategy's own arguments, and the settings every strategy shares, as a person reads them.
function strategyText(g) {
  const args = g.routing_strategy_args || {};
  if (g.routing_strategy === "latency-based-routing") {
    return `within ${Math.round(100 * (args.lowest_latency_buffer || 0))} % of the fastest count as tied;`
      + ` samples kept ${seconds(args.ttl)}`;
  }
  if (g.routing_strategy.startsWith("usage-based") || g.routing_strategy === "cost-based-routing") {
    return `samples kept ${seconds(args.ttl)}`;
  }
  return "–";
}

function settingsText(g) {
  const parts = [`${g.num_retries} retr${g.num_retries === 1 ? "y" : "ies"}`];
  const policy = Object.entries(g.retry_policy || {}).map(([k, v]) => `${k.replace(/Retries$/, "")} ${v}`);
  if (policy.length) parts.push(`per error: ${policy.join(", ")}`);
  parts.push(g.timeout === null || g.timeout === undefined ? "no timeout per attempt"
    : `timeout ${seconds(g.timeout)} per attempt`);
  if (g.stream_timeout !== null && g.stream_timeout !== undefined) parts.push(`stream timeout ${seconds(g.stream_timeout)}`);
  parts.push(g.cooldown_time === null ? "no cooldown"
    : `cooldown ${seconds(g.cooldown_time)} after ${g.allowed_fails} failures a minute`);
  if (g.enable_pre_call_checks) parts.push("context window checked before the call");
  if (g.enable_tag_filtering) parts.push("routed by tags");
  return parts.join(" · ");
}

function routingTable(routing) {
  return h("section", {}, h("h2", {}, "Routing"), table([
    { label: "Model group", value: (g) => g.model_group },
    { label: "Strategy", value: (g) => g.routing_strategy },
    { label: "Strategy settings", value: strategyText },
    { label: "Retries, timeouts, cooldown", value: settingsText },
    { label: "Fallbacks", value: (g) => groupsText(g.fallbacks) },
    { label: "Context window fallbacks", value: (g) => groupsText(g.context_window_fallbacks) },
    { label: "Content policy fallbacks", value: (g) => groupsText(g.content_policy_fallbacks) },
  ], routing, { caption: "How each model group is routed (router_settings)" }));
}
