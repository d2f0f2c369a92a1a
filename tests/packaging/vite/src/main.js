// A Vite app's use of the package: `init`/`track` from "eventwire", then the app's own test
// helper from "eventwire/testing" waits at the (dev) collector for the event it sent. The
// collector's base URL and this run's id come from the query string (tests/packaging/run.mjs).
import { init } from "eventwire";
import { expectEvents } from "eventwire/testing";

const SEARCH = "iglu:com.example.web/search/jsonschema/1-0-0";
const q = new URLSearchParams(location.search);
const result = document.getElementById("result");

async function main() {
  const endpoint = q.get("endpoint");
  const run = q.get("run");
  const tracker = await init({
    endpoint,
    writeKey: "packaging",
    labels: { environment: "test", service: "packaging-vite", team: "sdk", version: "1" },
    testId: run,
  });
  tracker.track({ schema: SEARCH, data: { query: run, results_count: 1 } });
  const flushed = await tracker.flush(10000);
  if (!flushed.ok) throw new Error("flush: " + JSON.stringify(flushed));
  const [event] = await expectEvents(endpoint, { schema: SEARCH, testId: run, timeoutMs: 10000 });
  return `delivered ${event.event_id}`;
}

main().then(
  (text) => Object.assign(result, { textContent: text }).setAttribute("data-state", "done"),
  (e) => Object.assign(result, { textContent: "failed: " + e.message }).setAttribute("data-state", "failed"),
);
