// Uses the types generated from codegen's golden schemas (golden.ts, written by the test):
// names that clash once made identifiers, in-document references, maps and big integers.
// Each `@ts-expect-error` line must fail to type-check (tsc rejects the file otherwise).
import type {
  ComAcmeAddToCart, ComAcmeAddToCart2, ComAcmeAddToCart3, ComAcmeCollide, ComAcmeMaps, ComAcmeRefs,
  SelfDescribing,
} from "./golden";

declare function track(event: SelfDescribing): void;

// Three schemas whose names clash get three types.
const a: ComAcmeAddToCart = { sku: "a" };
const b: ComAcmeAddToCart2 = { sku: "b" };
const c: ComAcmeAddToCart3 = { sku: "c" };
track({ schema: "iglu:com.acme/add-to-cart/jsonschema/1-0-0", data: b });

// Property names as written, each its own property.
const collide: ComAcmeCollide = { userId: "u", user_id: 3, "a-b": "x", a_b: "y", "": "e", "😀": "s", type: "t", type_: "u" };
// @ts-expect-error user_id is an integer, userId a string
const wrongCollide: ComAcmeCollide = { userId: 3, "a-b": "x" };

// A recursive tree through `$ref: "#"`, and a property reused through `#/properties/billing`.
const tree: ComAcmeRefs = {
  text: "root",
  replies: [{ text: "child", replies: [{ text: "grandchild" }] }],
  shipping: { city: "Leeds" },
  slash: 3,
  tilde: true,
  encoded: "x",
};
// @ts-expect-error a reply is a comment (text is a string)
const badReply: ComAcmeRefs = { text: "root", replies: [{ text: 1 }] };
// @ts-expect-error shipping is billing's shape (city is required)
const badShipping: ComAcmeRefs = { text: "root", shipping: { zip: "LS1" } };
// @ts-expect-error an escaped pointer `#/definitions/a~1b` is an integer
const badSlash: ComAcmeRefs = { text: "root", slash: "3" };
// @ts-expect-error a percent-encoded pointer `#/definitions/e%20f` is "x" | "y"
const badEncoded: ComAcmeRefs = { text: "root", encoded: "z" };

// patternProperties: a map of integers.
const maps: ComAcmeMaps = { counts: { a: 1, b: 2 }, labels: { x: "y" }, big: 9007199254740991 };
// @ts-expect-error a patternProperties map is not a string
const badMap: ComAcmeMaps = { counts: "a" };
// @ts-expect-error the map's values are integers
const badCount: ComAcmeMaps = { counts: { a: "1" } };
// @ts-expect-error additionalProperties' values are strings
const badLabel: ComAcmeMaps = { labels: { x: 1 } };

export { a, b, c, collide, wrongCollide, tree, badReply, badShipping, badSlash, badEncoded, maps, badMap, badCount, badLabel };
