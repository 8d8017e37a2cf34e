// Models: the model groups the key may call (/v1/models); for an admin, each deployment's
// live health from /metrics (cooldowns, in flight), never its secrets.
import { h, alertBox, showError, api, table, readsAll } from "./core.js";
import { parseMetrics } from "./live.js";

export async function modelsPage(main) {
  const box = alertBox();
  main.append(h("h1", {}, "Models"), box);
  const result = await api("GET", "/v1/models");
  if (!result.ok) return showError(box, result);
  const models = result.data.data || [];
  const deployments = new Map();
  if (readsAll()) {
    const metrics = await api("GET", "/metrics");
    if (metrics.ok) {
      for (const x of parseMetrics(metrics.data || "")) {
        if (!x.labels.deployment || !x.labels.model_group) continue;
        const list = deployments.get(x.labels.model_group) || new Map();
        const row = list.get(x.labels.deployment) || { deployment: x.labels.deployment };
        if (x.name === "switchboard_deployment_cooldown_remaining_seconds") row.cooldown = x.value;
        if (x.name === "switchboard_deployment_in_flight_requests") row.inflight = x.value;
        list.set(x.labels.deployment, row);
        deployments.set(x.labels.model_group, list);
      }
    }
  }
  main.append(table([
    { label: "Model group", value: (m) => m.id },
    { label: "Owned by", value: (m) => m.owned_by || "" },
    { label: "Deployments", value: (m) => [...(deployments.get(m.id) || new Map()).values()]
      .map((d) => `${d.deployment} (${d.cooldown ? "cooling down" : "healthy"}, ${d.inflight ?? 0} in flight)`)
      .join("; ") || "–" },
  ], models, { caption: `${models.length} model groups this key may call` }));
}
