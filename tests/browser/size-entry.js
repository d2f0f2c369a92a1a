// The minimal app of the size measurement: init + one track, as in docs/benchmarks.md.
import { init } from "eventwire";

const q = new URLSearchParams(location.search);
const tracker = await init({ endpoint: q.get("endpoint") || "http://127.0.0.1:8080", writeKey: "k", wasm: "/build/core_bg.wasm" });
tracker.track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "bundled-0", results_count: 0 } });
await tracker.flush();
window.done = true;
