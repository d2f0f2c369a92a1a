// A webpack app's use of the package: `init`/`track` from "eventwire", with the personal data
// of the customer event sealed in the page by "eventwire/pii". The collector's base URL, the
// public key (`eventwire pii keygen`) and this run's id come from the query string
// (tests/packaging/run.mjs).
import { init } from "eventwire";
import { withPii } from "eventwire/pii";

const CUSTOMER = "iglu:com.example.shop/customer/jsonschema/1-0-0";
// What `eventwire codegen --lang ts` generates as PII_MARKS for schemas/ (its x-pii fields).
const PII_MARKS = { [CUSTOMER]: ["/email", "/name"] };
const q = new URLSearchParams(location.search);
const result = document.getElementById("result");

async function main() {
  const run = q.get("run");
  const options = {
    endpoint: q.get("endpoint"),
    writeKey: "packaging",
    labels: { environment: "test", service: "packaging-webpack", team: "sdk", version: "1" },
    piiMarks: PII_MARKS,
    testId: run,
  };
  const tracker = await init(withPii(options, q.get("key")));
  tracker.track({ schema: CUSTOMER, data: { customer_id: "C-1000", email: `${run}@example.com`, name: run, tier: "gold" } });
  const flushed = await tracker.flush(10000);
  if (!flushed.ok) throw new Error("flush: " + JSON.stringify(flushed));
  const stats = tracker.stats();
  return `sent ${stats.sent}, rejected ${stats.rejected}`;
}

main().then(
  (text) => Object.assign(result, { textContent: text }).setAttribute("data-state", "done"),
  (e) => Object.assign(result, { textContent: "failed: " + e.message }).setAttribute("data-state", "failed"),
);
