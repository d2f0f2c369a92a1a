/** What a test expects a dev collector (`eventwire collect --dev`) to hold. */
export interface Expect {
  /** Only events of this Iglu URI. */
  schema?: string;
  /** Only events whose `context.test_id` is this (the tracker's `init({ testId })`). */
  testId?: string;
  /** Only the event with this id. */
  eventId?: string;
  /** Only events with this label: `name=value` (`service=web`), or a value any label holds. */
  label?: string;
  /** At least this many (default 1). */
  count?: number;
  /** Wait at most this long, ms (default 10,000; the collector allows 5 minutes). */
  timeoutMs?: number;
  /** The collector's write key, when it has some (`eventwire collect --write-key`). */
  writeKey?: string;
  /** Wait for dead letters (refused events) instead of stored ones. */
  deadLetters?: boolean;
}

/** A record that almost matched, and why it did not (one reason per criterion it failed). */
export interface NearMiss {
  kind: "good" | "bad";
  why: string[];
  /** The event, or the dead letter (`{ code, errors, event }`). */
  record: any;
}

/** The error `expectEvents` rejects with at the timeout. */
export interface MissingEvents extends Error {
  /** The matching records that did arrive. */
  arrived: any[];
  /** Records that almost matched, closest first. */
  nearMisses: NearMiss[];
}

/**
 * Resolves with the matching records (oldest first, at least `count`) as soon as the
 * collector at `collector` (its base URL, as given to `init({ endpoint })`) holds them;
 * rejects at the timeout with a {@link MissingEvents} whose message lists what arrived and
 * why each near miss did not match, or with an Error when the collector cannot be asked
 * (not running, not in dev mode, a write key missing). Throws a TypeError at once for an
 * empty criterion (it would match another test's events), a count below 1 or a timeout
 * that is not a number.
 */
export function expectEvents(collector: string, expect?: Expect): Promise<any[]>;
