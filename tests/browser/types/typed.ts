// The typed API: with the union generated from the app's schemas (`eventwire codegen --lang
// ts`, written to types/events.ts by run.mjs), a wrong `data` for a `schema` does not compile.
import { createTracker, init, type Flushed, type Tracker } from "eventwire";
import type { SelfDescribing } from "./events";

const tracker: Tracker<SelfDescribing> = await init<SelfDescribing>({
  endpoint: "https://collector.example.com",
  writeKey: "k",
  labels: { environment: "prod", service: "web", team: "media", version: "3f2c1aa" },
});

tracker.track({ schema: "iglu:com.example.media/play/jsonschema/1-0-0", data: { media_id: "b0074dlv", position_s: 0 } });
tracker.track({
  schema: "iglu:com.example.media/play/jsonschema/1-0-0",
  data: { media_id: "b0074dlv", position_s: 12.5, autoplay: true },
  entities: [{ schema: "iglu:com.example.media/player/jsonschema/1-0-0", data: { kind: "video", player_name: "html5" } }],
});
tracker.track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "weather", results_count: 3 } });
const flushed: Flushed = await tracker.flush(2000);
const done: boolean = flushed.ok && flushed.pending === 0;
const early: Tracker<SelfDescribing> = createTracker<SelfDescribing>({ endpoint: "https://collector.example.com" });
early.track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "early", results_count: 0 } });
await early.ready;
const sent: number = tracker.stats().sent;
tracker.setUserId("u-42");
tracker.setUserId(null);

// @ts-expect-error position_s must be a number
tracker.track({ schema: "iglu:com.example.media/play/jsonschema/1-0-0", data: { media_id: "b0074dlv", position_s: "0" } });
// @ts-expect-error position_s is required
tracker.track({ schema: "iglu:com.example.media/play/jsonschema/1-0-0", data: { media_id: "b0074dlv" } });
// @ts-expect-error search data under the play schema
tracker.track({ schema: "iglu:com.example.media/play/jsonschema/1-0-0", data: { query: "weather", results_count: 3 } });
// @ts-expect-error not a known schema
tracker.track({ schema: "iglu:com.example.media/rewind/jsonschema/1-0-0", data: {} });
// @ts-expect-error additionalProperties: false
tracker.track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "w", results_count: 1, extra: true } });
// @ts-expect-error an entity with the wrong data
tracker.track({ schema: "iglu:com.example.media/play/jsonschema/1-0-0", data: { media_id: "b0074dlv", position_s: 0 }, entities: [{ schema: "iglu:com.example.media/player/jsonschema/1-0-0", data: { media_id: 1 } }] });
// @ts-expect-error the endpoint is required
await init({ writeKey: "k" });
// @ts-expect-error stats are numbers
const wrong: string = tracker.stats().pending;
// @ts-expect-error flush resolves an object, not a boolean
const bare: boolean = await tracker.flush();
// @ts-expect-error createTracker checks data like init
createTracker<SelfDescribing>({ endpoint: "x" }).track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: 1 } });

export { flushed, done, sent, wrong, bare };

// Personal data: the generated marks, sealed by the subpath.
import { withPii } from "eventwire/pii";
import { PII_MARKS } from "./events";
const sealing: Tracker<SelfDescribing> = await init<SelfDescribing>(
  withPii({ endpoint: "https://collector.example.com", piiMarks: PII_MARKS }, "ewpk1.…"),
);
sealing.track({ schema: "iglu:com.example.shop/customer/jsonschema/1-0-0", data: { customer_id: "C-1234", email: "a@example.com" } });
const stillSealing: number | undefined = sealing.stats().sealing;
// @ts-expect-error the key is text (the file `eventwire pii keygen --public` wrote)
withPii({ endpoint: "https://collector.example.com" }, new Uint8Array(65));

// An app's tests: a test id on the tracker, and the helper that waits for its events.
import { expectEvents, type MissingEvents } from "eventwire/testing";
const underTest: Tracker<SelfDescribing> = await init<SelfDescribing>({ endpoint: "http://127.0.0.1:8080", testId: "checkout-1" });
underTest.track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "t", results_count: 1 } });
const got: any[] = await expectEvents("http://127.0.0.1:8080", { schema: "iglu:com.example.web/search/jsonschema/1-0-0", testId: "checkout-1", count: 1, timeoutMs: 5000 });
const refused: any[] = await expectEvents("http://127.0.0.1:8080", { deadLetters: true });
const why = (e: MissingEvents): string[] => e.nearMisses.flatMap((m) => m.why);
// @ts-expect-error the count is a number
expectEvents("http://127.0.0.1:8080", { count: "3" });
export { got, refused, why };
