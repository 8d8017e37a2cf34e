// Live: the figures /metrics exports (no second source of truth), read every few seconds:
// queues per lane (depth, pending, how long the oldest entry has waited), workers, in flight, latency and TTFT per deployment, cooldowns, rates.
import { h, alertBox, showError, api, table, chart } from "./core.js";

const REFRESH_MS = 3000;
const HISTORY = 40;

// The Prometheus text format -> [{name, labels, value}].
export function parseMetrics(text) {
  const samples = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of text.split("\n")) {
    if (!raw || raw.startsWith("#")) continue;
    const m = line.exec(raw);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(label)) labels[l[1]] = l[2].replace(/\\(.)/g, "$1");
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

const pick = (samples, name) => samples.filter((s) => s.name === name);
const sum = (samples, name) => pick(samples, name).reduce((a, s) => a + s.value, 0);

export async function livePage(main) {
  const box = alertBox();
  const tiles = h("div", { class: "tiles", "aria-live": "polite" });
  const rates = h("canvas", { role: "img", "aria-label": "Requests, errors and fallbacks per second" });
  const lanes = h("section");
  const deployments = h("section");
  main.append(h("h1", {}, "Live"), h("p", {}, `From /metrics, every ${REFRESH_MS / 1000} s.`),
    box, tiles, h("div", { class: "chart" }, rates), lanes, deployments);
  const history = { labels: [], requests: [], errors: [], fallbacks: [] };
  const graph = chart(rates, { type: "line", data: { labels: history.labels, datasets: [
    { label: "requests/s", data: history.requests },
    { label: "errors/s", data: history.errors },
    { label: "fallbacks/s", data: history.fallbacks }] },
    options: { scales: { y: { beginAtZero: true } } } });
  let last = null;

  async function tick() {
    const result = await api("GET", "/metrics");
    if (!result.ok) { showError(box, result); return; }
    box.hidden = true;
    const s = parseMetrics(result.data || "");
    const now = Date.now();
    const counts = {
      requests: sum(s, "switchboard_requests_total"),
      errors: pick(s, "switchboard_requests_total").filter((x) => x.labels.status !== "success"
        && x.labels.status !== "ok").reduce((a, x) => a + x.value, 0),
      fallbacks: sum(s, "switchboard_fallbacks_total"),
    };
    if (last) {
      const dt = (now - last.at) / 1000 || 1;
      history.labels.push(new Date(now).toLocaleTimeString());
      for (const k of ["requests", "errors", "fallbacks"]) {
        history[k].push(Math.max(0, (counts[k] - last.counts[k]) / dt));
      }
      if (history.labels.length > HISTORY) for (const a of Object.values(history)) a.shift();
      graph.update();
    }
    last = { at: now, counts };
    tiles.replaceChildren(...[
      ["Live workers", sum(s, "switchboard_live_workers")],
      ["Worker capacity", sum(s, "switchboard_workers_capacity")],
      ["In flight (workers)", sum(s, "switchboard_workers_in_flight_requests")],
      ["In flight (front door)", sum(s, "switchboard_front_door_in_flight_requests")],
      ["Dead letters", sum(s, "switchboard_dead_letter_entries")],
    ].map(([label, value]) => h("div", { class: "tile" }, h("span", {}, label), h("strong", {}, String(value)))));
    const depth = pick(s, "switchboard_queue_depth");
    const ofLane = (name, x) => pick(s, name).find((p) => p.labels.lane === x.labels.lane)?.value ?? 0;
    lanes.replaceChildren(h("h2", {}, "Queues"), table([
      { label: "Lane", value: (x) => x.labels.lane },
      { label: "Waiting", value: (x) => x.value },
      { label: "Pending (taken, not done)", value: (x) => ofLane("switchboard_queue_pending", x) },
      { label: "Oldest waiting s", value: (x) => ofLane("switchboard_queue_oldest_wait_seconds", x),
        cell: (x) => ofLane("switchboard_queue_oldest_wait_seconds", x).toFixed(1) },
    ], depth, { caption: "Queues per lane" }));
    const byDeployment = new Map();
    const put = (name, field, scale = 1) => {
      for (const x of pick(s, name)) {
        const id = `${x.labels.model_group}|${x.labels.deployment}`;
        const row = byDeployment.get(id) || { group: x.labels.model_group, deployment: x.labels.deployment };
        row[field] = x.value * scale;
        byDeployment.set(id, row);
      }
    };
    put("switchboard_deployment_in_flight_requests", "inflight");
    put("switchboard_deployment_ttft_average_seconds", "ttft", 1000);
    put("switchboard_deployment_latency_per_token_average_seconds", "lpt", 1000);
    put("switchboard_deployment_cooldown_remaining_seconds", "cooldown");
    put("switchboard_deployment_minute_requests", "rpm");
    put("switchboard_deployment_minute_failures", "failures");
    const fmt = (v) => (Number.isFinite(v) ? Number(v).toFixed(1) : "–");
    const num = (v) => (Number.isFinite(v) ? v : -1);
    deployments.replaceChildren(h("h2", {}, "Deployments"), table([
      { label: "Model group", value: (r) => r.group },
      { label: "Deployment", value: (r) => r.deployment },
      { label: "In flight", value: (r) => r.inflight ?? 0 },
      { label: "TTFT ms", value: (r) => num(r.ttft), cell: (r) => fmt(r.ttft) },
      { label: "ms / token", value: (r) => num(r.lpt), cell: (r) => fmt(r.lpt) },
      { label: "Requests this minute", value: (r) => r.rpm ?? 0 },
      { label: "Failures this minute", value: (r) => r.failures ?? 0 },
      { label: "Cooldown s", value: (r) => r.cooldown ?? 0, cell: (r) => (r.cooldown ? fmt(r.cooldown) : "healthy") },
    ], [...byDeployment.values()]));
  }
  await tick();
  const timer = setInterval(tick, REFRESH_MS);
  return () => { clearInterval(timer); graph.destroy(); };
}
