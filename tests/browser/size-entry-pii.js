// size-entry.js with sealing: the extra bytes are what eventwire/pii costs a page.
import { init } from "eventwire";
import { withPii } from "eventwire/pii";

const q = new URLSearchParams(location.search);
const marks = { "iglu:com.example.shop/customer/jsonschema/1-0-0": ["/email", "/name"] };
const options = { endpoint: q.get("endpoint") || "http://127.0.0.1:8080", writeKey: "k", wasm: "/build/core_bg.wasm", piiMarks: marks };
const tracker = await init(withPii(options, q.get("key")));
tracker.track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "bundled-0", results_count: 0 } });
await tracker.flush();
window.done = true;
