// Playground: chat with a model group the key may call, streamed, with the gateway's response
// headers (deployment, attempts, overhead, cost) beside the answer.
import { h, field, alertBox, showError, api, apiStream } from "./core.js";

const HEADERS = ["x-request-id", "x-switchboard-deployment", "x-switchboard-attempts",
  "x-switchboard-fallbacks", "x-switchboard-overhead-ms", "x-switchboard-cost-usd",
  "x-switchboard-worker"];

export async function playgroundPage(main) {
  const box = alertBox();
  const models = await api("GET", "/v1/models");
  // A list to pick from (what /v1/models lists for this key: its models, its team's, its `*`
  // entries resolved), and free text: a wildcard group serves names no list can hold.
  const names = ((models.ok && models.data.data) || []).map((m) => m.id);
  const model = h("input", { id: "play-model", name: "model", list: "play-models",
    required: true, autocomplete: "off", value: names[0] || "" });
  const choices = h("datalist", { id: "play-models" }, names.map((n) => h("option", { value: n })));
  const prompt = h("textarea", { id: "play-prompt", name: "prompt", rows: 4, required: true });
  const answer = h("div", { class: "answer", "aria-live": "polite", "data-testid": "answer" });
  const facts = h("dl", { class: "record", "data-testid": "facts" });
  const inspect = h("p");
  const form = h("form", { class: "card" }, field("Model", model), choices, field("Message", prompt),
    h("button", { type: "submit" }, "Send"));
  main.append(h("h1", {}, "Playground"), form, box,
    h("div", { class: "split" }, h("section", {}, h("h2", {}, "Answer"), answer),
      h("section", {}, h("h2", {}, "Gateway"), facts, inspect)));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    box.hidden = true;
    answer.textContent = "";
    facts.replaceChildren();
    inspect.replaceChildren();
    const response = await apiStream("/v1/chat/completions", { model: model.value, stream: true,
      stream_options: { include_usage: true }, messages: [{ role: "user", content: prompt.value }] });
    const shown = (label, value) => facts.append(h("dt", {}, label), h("dd", {}, value));
    for (const name of HEADERS) {
      const value = response.headers.get(name);
      if (value) shown(name.replace("x-switchboard-", ""), value);
    }
    const rid = response.headers.get("x-request-id");
    if (rid) inspect.append(h("a", { href: `#/inspect/${encodeURIComponent(rid)}` }, "Inspect this request"));
    if (!response.ok) {
      let data = null;
      try { data = await response.json(); } catch { data = null; }
      return showError(box, { status: response.status, data });
    }
    await readStream(response, (chunk) => {
      if (chunk.error) showError(box, { status: 200, data: chunk });
      for (const choice of chunk.choices || []) answer.textContent += choice.delta?.content || "";
      if (chunk.usage) shown("tokens", `${chunk.usage.prompt_tokens} in, ${chunk.usage.completion_tokens} out`);
    });
  });
}

async function readStream(response, onChunk) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        try { onChunk(JSON.parse(data)); } catch { /* a comment or partial line */ }
      }
    }
  }
}
