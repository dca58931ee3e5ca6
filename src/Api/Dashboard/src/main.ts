import { ApiError } from "./api";
import { h } from "./dom";
import { capacityPage } from "./pages/capacity";
import { fleetPage } from "./pages/fleet";
import { resourcePage } from "./pages/resource";
import { simulationPage, simulationsPage } from "./pages/simulations";
import { trainingPage } from "./pages/training";

// A hash router: every page is a function of the URL, so links, reloads and the back button just work.
const root = document.getElementById("page")!;
let generation = 0;

async function route(): Promise<void> {
  const mine = ++generation;
  const isCurrent = () => mine === generation;
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query ?? "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === `#/${parts[0] ?? ""}`);
  }
  root.replaceChildren(h("p", { class: "muted", id: "loading" }, "Loading…"));
  try {
    if (parts.length === 0) await fleetPage(root);
    else if (parts[0] === "resources" && parts[1]) await resourcePage(root, parts[1]);
    else if (parts[0] === "capacity") await capacityPage(root, params.get("group"));
    else if (parts[0] === "simulations" && parts[1]) await simulationPage(root, parts[1]);
    else if (parts[0] === "simulations") await simulationsPage(root);
    else if (parts[0] === "training") await trainingPage(root, isCurrent);
    else throw new ApiError(404, "No such page", `Nothing lives at #${path}.`);
    root.dataset.ready = "true";
  } catch (e) {
    if (!isCurrent()) return;
    const message = e instanceof ApiError ? `${e.title}: ${e.detail}` : `Something went wrong: ${String(e)}`;
    root.replaceChildren(h("div", { class: "error", role: "alert", id: "error" }, message), h("p", {}, h("a", { href: "#/" }, "Back to the fleet")));
    root.dataset.ready = "error";
  }
}

window.addEventListener("hashchange", () => { delete root.dataset.ready; void route(); });
void route();
