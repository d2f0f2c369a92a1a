// eventwire/testing: wait in an app's tests for the events a dev collector holds
// (`eventwire collect --dev`), instead of sleeping and polling. Runs in node (18+) and in
// browsers: it only needs `fetch`. The collector does the matching (GET /v1/events/wait);
// this turns its answer into events, or into an error that says what arrived and why
// each near miss did not match.

const DEFAULT_TIMEOUT_MS = 10000;
// The collector's longest wait (`/v1/events/wait?timeout=`: 5 minutes).
const MAX_TIMEOUT_MS = 300000;

function summary(kind, record) {
  const e = (kind === "bad" ? record && record.event : record) || {};
  return `${kind} ${e.event_id || "?"} ${e.schema || "?"}`;
}

/**
 * Resolves with the matching records (oldest first, at least `count`) as soon as the
 * collector holds them; rejects at the timeout with an Error listing what arrived and the
 * near misses (`error.arrived`, `error.nearMisses` hold them too).
 */
export async function expectEvents(collector, expect = {}) {
  const { schema, testId, eventId, label, writeKey, count = 1, timeoutMs = DEFAULT_TIMEOUT_MS, deadLetters = false } = expect;
  const criteria = { schema, test_id: testId, event_id: eventId, label };
  for (const [name, v] of Object.entries(criteria)) {
    // An empty or non-string criterion would match any event, another test's included.
    if (v !== undefined && (typeof v !== "string" || v === "")) {
      throw new TypeError(`eventwire/testing: ${name} must be a non-empty string, not ${JSON.stringify(v)}`);
    }
  }
  if (!Number.isSafeInteger(count) || count < 1) throw new TypeError(`eventwire/testing: count must be a whole number from 1, not ${JSON.stringify(count)}`);
  if (typeof timeoutMs !== "number" || !(timeoutMs >= 0 && timeoutMs <= MAX_TIMEOUT_MS)) {
    throw new TypeError(`eventwire/testing: timeoutMs must be a number of milliseconds from 0 to ${MAX_TIMEOUT_MS} (the collector's longest wait), not ${JSON.stringify(timeoutMs)}`);
  }
  // The wait endpoint under the collector's base URL; a query it has (`?write_key=`) is kept.
  const url = new URL(String(collector));
  url.pathname = url.pathname.replace(/\/+$/, "") + "/v1/events/wait";
  const q = url.searchParams;
  q.set("kind", deadLetters ? "bad" : "good");
  for (const [name, v] of Object.entries(criteria)) if (v !== undefined) q.set(name, v);
  q.set("count", String(count));
  q.set("timeout", `${Math.round(timeoutMs)}ms`);
  let answer;
  try {
    answer = await fetch(url, {
      headers: writeKey ? { authorization: `Bearer ${writeKey}` } : {},
      signal: AbortSignal.timeout(timeoutMs + 10000),
    });
  } catch (e) {
    throw new Error(`eventwire/testing: the collector could not be asked (${url}): ${e.message}`, { cause: e });
  }
  const text = await answer.text();
  let body;
  try { body = JSON.parse(text); } catch { body = undefined; }
  if (answer.status === 200 && body) return body.events;
  if (answer.status !== 408 || !body) {
    const hint = answer.status === 404 ? " (is it running with --dev?)"
      : answer.status === 401 || answer.status === 403 ? " (give its write key: { writeKey })" : "";
    throw new Error(`eventwire/testing: the collector answered ${answer.status}: ${text.trim().slice(0, 500)}${hint}`);
  }
  const asked = Object.entries(criteria).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`).join(", ") || "any";
  const what = `${count} ${deadLetters ? (count === 1 ? "dead letter" : "dead letters") : (count === 1 ? "event" : "events")}`;
  const lines = [`expected ${what} (${asked}) within ${timeoutMs}ms; ${body.events.length} arrived`];
  for (const r of body.events) lines.push(`  - ${summary(deadLetters ? "bad" : "good", r)}`);
  if (body.near_misses.length) {
    lines.push("near misses:");
    for (const m of body.near_misses) lines.push(`  - ${summary(m.kind, m.record)}: ${m.why.join("; ")}`);
  } else lines.push("no near misses");
  const error = new Error(lines.join("\n"));
  error.arrived = body.events;
  error.nearMisses = body.near_misses;
  throw error;
}
