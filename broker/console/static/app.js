// The console's shell: sign-in, the navigation each role sees, and hash routing (#/keys).
import { session, h, field, input, alertBox, showError, loadSession, signIn, signOut,
  readsAll, isTeamAdmin, managesKeys } from "./core.js";
import { keysPage } from "./keys.js";
import { teamsPage } from "./teams.js";
import { usersPage } from "./users.js";
import { spendPage } from "./spend.js";
import { livePage } from "./live.js";
import { modelsPage } from "./models.js";
import { inspectPage } from "./inspect.js";
import { playgroundPage } from "./playground.js";

const PAGES = [
  { path: "keys", label: "Keys", show: managesKeys, render: keysPage },
  { path: "teams", label: "Teams", show: () => readsAll() || isTeamAdmin(), render: teamsPage },
  { path: "users", label: "Users", show: readsAll, render: usersPage },
  { path: "spend", label: "Spend", show: managesKeys, render: spendPage },
  // /metrics decides: the master key or metrics_key, or anyone on an open gateway.
  { path: "live", label: "Live", show: () => readsAll() || session.role === "api_key", render: livePage },
  { path: "models", label: "Models", show: () => true, render: modelsPage },
  { path: "inspect", label: "Request inspector", show: managesKeys, render: inspectPage },
  { path: "playground", label: "Playground", show: () => true, render: playgroundPage },
];

let stopPage = null;

function signInPage(main) {
  const box = alertBox();
  const key = input("key", { type: "password", required: true, autocomplete: "current-password",
    placeholder: "sk-..." });
  const form = h("form", { class: "card narrow", "aria-labelledby": "signin-title",
    onsubmit: async (event) => {
      event.preventDefault();
      const result = await signIn(key.value);
      key.value = "";  // the key leaves the page: only the server keeps it, masked
      if (!result.ok) return showError(box, result);
      go("#/" + firstPage());
    } },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", {}, "Use the master key or any API key. What you see follows the key's role."),
    field("API key", key), box, h("button", { type: "submit" }, "Sign in"));
  main.append(form);
  key.focus();
}

function firstPage() {
  const page = PAGES.find((p) => p.show());
  return page ? page.path : "playground";
}

function renderNav(current) {
  const nav = document.getElementById("nav");
  nav.hidden = !session.signedIn;
  nav.replaceChildren(h("ul", {}, PAGES.filter((p) => p.show()).map((p) =>
    h("li", {}, h("a", { href: `#/${p.path}`, "aria-current": p.path === current ? "page" : null },
      p.label)))));
  document.getElementById("who").textContent = session.signedIn
    ? `${session.label} · ${session.role}${session.teamIds.length ? " · team admin" : ""}` : "";
  document.getElementById("signout").hidden = !session.signedIn;
}

async function route() {
  if (stopPage) { stopPage(); stopPage = null; }
  await loadSession();
  const main = document.getElementById("main");
  main.replaceChildren();
  const [path, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  if (!session.signedIn) {
    renderNav("");
    return signInPage(main);
  }
  const page = PAGES.find((p) => p.path === path && p.show());
  if (!page) { location.hash = "#/" + firstPage(); return; }
  renderNav(page.path);
  document.title = `${page.label} · Switchboard console`;
  stopPage = (await page.render(main, rest.map(decodeURIComponent))) || null;
  main.focus({ preventScroll: true });
}

document.getElementById("signout").addEventListener("click", async () => {
  await signOut();
  go("#/signin");
});

function go(target) {
  if (location.hash === target) route();
  else location.hash = target;  // hashchange routes
}
window.addEventListener("hashchange", route);
route();
