// eventwire/testing: wait in an app's tests for the events a dev collector holds
// (`eventwire collect --dev`), instead of sleeping and polling. Runs in node (18+) and in
// browsers: it only needs `fetch`. The collector does the matching (GET /v1/events/wait);
// this turns its answer into events, or into an error that says what arrived and why
// each near miss did not match.

const DEFAULT_TIMEOUT_MS = 10000;

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
  const { schema, testId, eventId, label, count = 1, timeoutMs = DEFAULT_TIMEOUT_MS, deadLetters = false } = expect;
  const q = new URLSearchParams({ kind: deadLetters ? "bad" : "good" });
  if (schema) q.set("schema", schema);
  if (testId) q.set("test_id", testId);
  if (eventId) q.set("event_id", eventId);
  if (label) q.set("label", label);
  q.set("count", String(Math.max(1, count)));
  q.set("timeout", `${Math.max(0, Math.round(timeoutMs))}ms`);
  const url = `${String(collector).replace(/\/+$/, "")}/v1/events/wait?${q}`;
  let answer;
  try {
    answer = await fetch(url, { signal: AbortSignal.timeout(timeoutMs + 10000) });
  } catch (e) {
    throw new Error(`eventwire/testing: the collector could not be asked (${url}): ${e.message}`, { cause: e });
  }
  const text = await answer.text();
  let body;
  try { body = JSON.parse(text); } catch { body = undefined; }
  if (answer.status === 200 && body) return body.events;
  if (answer.status !== 408 || !body) {
    throw new Error(`eventwire/testing: the collector answered ${answer.status}: ${text.trim().slice(0, 500)} (is it running with --dev?)`);
  }
  const criteria = Object.entries({ schema, test_id: testId, event_id: eventId, label })
    .filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join(", ") || "any";
  const n = Math.max(1, count);
  const what = `${n} ${deadLetters ? (n === 1 ? "dead letter" : "dead letters") : (n === 1 ? "event" : "events")}`;
  const lines = [`expected ${what} (${criteria}) within ${timeoutMs}ms; ${body.events.length} arrived`];
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
