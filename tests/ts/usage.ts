// Uses the types generated from the repository's schemas (events.ts, written by the test).
import type { SelfDescribing, ComExampleMediaPlay, ComExampleShopCheckout, EventMap } from "./events";
import { SCHEMAS } from "./events";

declare function track(event: SelfDescribing): void;

// Right data for the schema: accepted.
track({ schema: "iglu:com.example.media/play/jsonschema/1-0-0", data: { media_id: "b0074dlv", position_s: 0 } });
track({
  schema: "iglu:com.example.media/play/jsonschema/1-0-0",
  data: { media_id: "b0074dlv", position_s: 12.5, autoplay: true },
  entities: [{ schema: "iglu:com.example.media/player/jsonschema/1-0-0", data: { kind: "video", player_name: "html5" } }],
});
track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "weather", results_count: 3, filters: { sort: "newest" } } });
const checkout: ComExampleShopCheckout = {
  order_id: "ORD-123456", currency: "GBP", total: 10, items: [{ sku: "AB-1234", quantity: 1, unit_price: 10 }], payment_method: "card",
};
track({ schema: "iglu:com.example.shop/checkout/jsonschema/1-0-1", data: checkout });
const play: ComExampleMediaPlay = { media_id: "b0074dlv", position_s: 1 };
const data: EventMap["iglu:com.example.media/play/jsonschema/1-0-0"] = play;
const known: readonly string[] = SCHEMAS;

// Wrong data for the schema: each line must fail to type-check.
// @ts-expect-error position_s must be a number
track({ schema: "iglu:com.example.media/play/jsonschema/1-0-0", data: { media_id: "b0074dlv", position_s: "12" } });
// @ts-expect-error position_s is required
track({ schema: "iglu:com.example.media/play/jsonschema/1-0-0", data: { media_id: "b0074dlv" } });
// @ts-expect-error additionalProperties: false
track({ schema: "iglu:com.example.media/play/jsonschema/1-0-0", data: { media_id: "b0074dlv", position_s: 1, volume: 3 } });
// @ts-expect-error not a known schema
track({ schema: "iglu:com.example.media/rewind/jsonschema/1-0-0", data: {} });
// @ts-expect-error search data under the play schema
track({ schema: "iglu:com.example.media/play/jsonschema/1-0-0", data: { query: "weather", results_count: 3 } });
// @ts-expect-error enum value outside the list
track({ schema: "iglu:com.example.media/seek/jsonschema/1-0-0", data: { media_id: "b0074dlv", from_s: 1, to_s: 2, method: "teleport" } });
const old: import("./events").ComExampleShopCheckoutV1_0_0 = {
  order_id: "ORD-123456", currency: "GBP", total: 10, items: [{ sku: "AB-1234", quantity: 1, unit_price: 10 }],
  // @ts-expect-error payment_method exists only from 1-0-1
  payment_method: "card",
};
// @ts-expect-error a bad entity
track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "x", results_count: 1 }, entities: [{ schema: "iglu:com.example.media/player/jsonschema/1-0-0", data: { kind: "hologram", player_name: "x" } }] });

export { data, known, old };
