// Spend over a range, by day and by key, team, user, model or tag (/global/spend/report,
// LiteLLM's shape), as a stacked bar chart, a table and a CSV file. The API sums: `top_n`
// names the biggest groups and sums the rest into one "other" entry per day, so the page
// gets a few hundred rows whatever the size of the database. A key that may not read
// the report sees its own rows from /spend/logs, summed here per day and model.
import { h, field, input, alertBox, showError, api, money, table, downloadCsv, chart,
  readsAll, pager } from "./core.js";
import { listKeys, NEAR_BUDGET_PERCENT } from "./keys.js";

const GROUPS = [["team", "Team"], ["api_key", "Key"], ["user", "User"], ["model", "Model"],
  ["tag", "Tag"], ["organization", "Organization"]];

const TOP_N = 10;
const TOP_TOTALS = 1000; // the API's most; a CSV of totals names that many groups
const isoDay = (d) => d.toISOString().slice(0, 10);

// An entry's group as a person reads it: a key by its alias or sk-...abcd (the API names
// the keys it reports), "other (N more)" for the rest summed.
function groupName(entry) {
  if (entry.is_other) return `other (${entry.groups} more)`;
  if (entry.key_alias || entry.key_name) return entry.key_alias || entry.key_name;
  const field = Object.keys(entry).find((k) => !NOT_GROUP.includes(k));
  return String(entry[field] ?? "–");
}
const NOT_GROUP = ["total_spend", "total_tokens", "api_requests", "metadata", "is_other", "groups",
  "key_alias", "key_name"];

// Report entries -> flat rows {day, group, model, spend, tokens, requests}.
function flatten(report) {
  const rows = [];
  for (const day of report || []) {
    const listName = Object.keys(day).find((k) => Array.isArray(day[k]));
    for (const entry of day[listName] || []) {
      const name = groupName(entry);
      for (const m of entry.metadata || [{ model: "", spend: entry.total_spend }]) {
        rows.push({ day: day.group_by_day, group: name, model: m.model, isOther: !!entry.is_other,
          spend: Number(m.spend || 0), tokens: m.total_tokens || 0, requests: m.api_requests || 0 });
      }
    }
  }
  return rows;
}

function fromLogs(logs) {
  const sums = new Map();
  for (const row of logs || []) {
    const day = String(row.start_time || row.startTime || "").slice(0, 10);
    const id = `${day}|${row.model_group || row.model}`;
    const sum = sums.get(id) || { day, group: "own key", model: row.model_group || row.model,
      spend: 0, tokens: 0, requests: 0 };
    sum.spend += Number(row.spend || 0);
    sum.tokens += Number(row.total_tokens || 0);
    sum.requests += 1;
    sums.set(id, sum);
  }
  return [...sums.values()];
}

export async function spendPage(main) {
  const box = alertBox();
  const today = new Date();
  const start = input("start_date", { id: "spend-start", type: "date",
    value: isoDay(new Date(today.getTime() - 29 * 86400e3)) });
  const end = input("end_date", { id: "spend-end", type: "date", value: isoDay(today) });
  const group = h("select", { name: "group_by", id: "spend-group" },
    GROUPS.map(([v, l]) => h("option", { value: v }, l)));
  const canvas = h("canvas", { role: "img", "aria-label": "Spend per day, stacked by group" });
  const totals = h("p", { class: "totals", "aria-live": "polite" });
  const tableBox = h("section");
  const budgets = h("section");
  let rows = [];
  let graph = null;
  const groupOf = () => (readsAll() ? group.value : "key");
  const exportDays = h("button", { type: "button", class: "secondary", onclick: () =>
    downloadCsv(`spend-${start.value}-${end.value}-${groupOf()}-daily.csv`,
      ["day", groupOf(), "model", "spend_usd", "total_tokens", "requests"],
      rows.map((r) => [r.day, r.group, r.model, r.spend, r.tokens, r.requests])) },
  "Export daily CSV");
  const exportTotals = h("button", { type: "button", class: "secondary", onclick: () => totalsCsv() },
    "Export totals CSV");
  const form = h("form", { class: "card inline", onsubmit: (e) => { e.preventDefault(); load(); } },
    field("From", start), field("To", end), readsAll() ? field("Group by", group) : null,
    h("button", { type: "submit" }, "Show"), exportDays, exportTotals);
  main.append(h("h1", {}, "Spend"), form, box, totals,
    h("div", { class: "chart" }, canvas), tableBox, budgets);

  async function load() {
    box.hidden = true;
    const range = `start_date=${start.value}&end_date=${end.value}`;
    if (readsAll()) {
      const result = await api("GET",
        `/global/spend/report?group_by=${group.value}&top_n=${TOP_N}&${range}`);
      if (!result.ok) return showError(box, result);
      rows = flatten(result.data);
    } else {
      const result = await api("GET", `/spend/logs?${range}&limit=1000`);
      if (!result.ok) return showError(box, result);
      rows = fromLogs(result.data);
    }
    draw();
  }

  // One row per group over the whole range: the API's `view=totals` (the TOP_TOTALS that
  // spent most, the rest as one "other" row); a key without the report sums its own rows.
  async function totalsCsv() {
    let lines;
    if (readsAll()) {
      const result = await api("GET", `/global/spend/report?group_by=${group.value}&view=totals`
        + `&top_n=${TOP_TOTALS}&start_date=${start.value}&end_date=${end.value}`);
      if (!result.ok) return showError(box, result);
      const listName = Object.keys(result.data).find((k) => Array.isArray(result.data[k]));
      const entries = [...result.data[listName], ...(result.data.other ? [result.data.other] : [])];
      lines = entries.map((e) => [groupName(e), e.total_spend, e.total_tokens, e.api_requests]);
    } else {
      const sums = new Map();
      for (const r of rows) {
        const sum = sums.get(r.group) || [r.group, 0, 0, 0];
        sum[1] += r.spend; sum[2] += r.tokens; sum[3] += r.requests;
        sums.set(r.group, sum);
      }
      lines = [...sums.values()];
    }
    downloadCsv(`spend-${start.value}-${end.value}-${groupOf()}-totals.csv`,
      ["start_date", "end_date", groupOf(), "spend_usd", "total_tokens", "requests"],
      lines.map((l) => [start.value, end.value, ...l]));
  }

  function draw() {
    const days = [...new Set(rows.map((r) => r.day))].sort();
    const groups = [...new Set(rows.map((r) => r.group))];
    const total = rows.reduce((s, r) => s + r.spend, 0);
    totals.textContent = `Total ${money(total)} over ${rows.reduce((s, r) => s + r.requests, 0)} requests`;
    if (graph) graph.destroy();
    graph = chart(canvas, { type: "bar", data: { labels: days, datasets: groups.map((g) => ({
      label: g, data: days.map((d) => rows.filter((r) => r.day === d && r.group === g)
        .reduce((s, r) => s + r.spend, 0)) })) },
      options: { scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "USD" } } } } });
    tableBox.replaceChildren(table([
      { label: "Day", value: (r) => r.day },
      { label: "Group", value: (r) => r.group },
      { label: "Model", value: (r) => r.model || "" },
      { label: "Spend", value: (r) => r.spend, cell: (r) => money(r.spend) },
      { label: "Tokens", value: (r) => r.tokens },
      { label: "Requests", value: (r) => r.requests },
    ], rows, { caption: "Spend rows" }));
  }

  // The database picks them (/key/list?min_budget_percent=), the most used first, a page
  // at a time: right however many keys there are.
  let nearPage = 1;
  async function nearLimits() {
    const { keys, pages, total } = await listKeys(nearPage, `&min_budget_percent=${NEAR_BUDGET_PERCENT}`);
    const used = (k) => Number(k.spend || 0) / Number(k.max_budget);
    keys.sort((a, b) => used(b) - used(a));
    const go = (p) => { nearPage = p; nearLimits(); };
    budgets.replaceChildren(h("h2", {}, "Budgets near their limit"),
      pages > 1 ? pager(nearPage, pages, go, "Pages of keys near their budget") : "",
      table([
        { label: "Key", value: (k) => k.key_alias || k.key_name },
        { label: "Spend", value: (k) => Number(k.spend || 0), cell: (k) => h("span", { class: "warn" }, money(k.spend)) },
        { label: "Budget", value: (k) => Number(k.max_budget), cell: (k) => money(k.max_budget) },
        { label: "Used", value: used, cell: (k) => `${Math.round(100 * used(k))} %` },
      ], keys, { caption: `${total || keys.length} key${(total || keys.length) === 1 ? "" : "s"} at `
        + `${NEAR_BUDGET_PERCENT} % of their budget or more` }));
  }
  await load();
  await nearLimits();
  return () => { if (graph) graph.destroy(); };
}
