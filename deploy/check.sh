#!/usr/bin/env bash
# Checks what deploy/ ships against a real collector:
#
# 1. the rules: `promtool check rules` and their unit tests (`promtool test rules`);
# 2. the dashboard: valid JSON, with the data source and label variables;
# 3. a real run: starts `eventwire collect` (temporary sinks, the repo's schemas) and a real
#    Prometheus (Debian's package) that scrapes it as job `eventwire` every second and loads
#    the rules; sends good events, dead letters, a duplicate and a request that is shed,
#    under two versions of one service; then checks that
#    - every metric name the rules and the dashboard use is in the collector's /metrics
#      (names read from the rules as Prometheus parsed them, and from every query of the
#      dashboard, its variables' included);
#    - every rule evaluates without error, and the recording rules give the dead-letter
#      ratio the run produced;
#    - every dashboard query runs on Prometheus and returns series.
#
#   EVENTWIRE_BIN=target/debug/eventwire ./deploy/check.sh
#
# Needs promtool and prometheus (Debian: apt-get install prometheus), curl, jq and node.
set -euo pipefail
export LC_ALL=C
BIN=$(realpath "${EVENTWIRE_BIN:-target/debug/eventwire}")
# The collector and `eventwire send` read EVENTWIRE_* settings (a config file, write keys…):
# this run sets its own on the command line.
while read -r name; do unset "$name"; done < <(compgen -e | grep '^EVENTWIRE_' || true)
cd "$(dirname "$0")/.."
RULES=deploy/prometheus/alerts.yml
RULE_TESTS=deploy/prometheus/alerts_test.yml
DASHBOARD=deploy/grafana/eventwire.json

say() { printf 'deploy: %s\n' "$*"; }
fail() {
  printf 'deploy: FAILED: %s\n' "$*" >&2
  exit 1
}
for tool in promtool prometheus curl jq node; do
  command -v "$tool" >/dev/null || fail "$tool is missing (promtool and prometheus: apt-get install prometheus)"
done
[ -x "$BIN" ] || fail "no eventwire binary at $BIN (set EVENTWIRE_BIN)"

# --- 1. rules -------------------------------------------------------------------------
say "$(promtool --version 2>&1 | head -n1)"
promtool check rules "$RULES" || fail "promtool check rules $RULES"
promtool test rules "$RULE_TESTS" || fail "promtool test rules $RULE_TESTS"

# --- 2. dashboard ---------------------------------------------------------------------
jq empty "$DASHBOARD" || fail "$DASHBOARD is not valid JSON"
problems=$(jq -r '
  def panels: .panels[] | (., (.panels // [])[]);
  [ (if .schemaVersion >= 36 then empty else "schemaVersion \(.schemaVersion) is older than 36" end),
    (if any(.templating.list[]; .name == "datasource" and .type == "datasource" and .query == "prometheus")
       then empty else "no `datasource` variable of type datasource (prometheus)" end),
    (("service", "version") as $v
       | if any(.templating.list[]; .name == $v and .type == "query" and (.definition | startswith("label_values(")))
           then empty else "no `\($v)` variable from label_values" end),
    ([panels | .id] | group_by(.) | map(select(length > 1) | "panel id \(.[0]) is used twice")[]),
    (panels | select(.type != "row")
       | if (.targets // []) == [] then "panel \"\(.title)\" has no query" else empty end,
         (.targets[]? | select((.expr // "") == "") | "panel has a target without expr"),
         (if .datasource.uid == "${datasource}" then empty else "panel \"\(.title)\" does not use ${datasource}" end))
  ] | .[]' "$DASHBOARD")
[ -z "$problems" ] || fail "$DASHBOARD: $problems"
say "dashboard: $(jq '[.panels[] | select(.type != "row")] | length' "$DASHBOARD") panels, valid JSON"

# --- 3. a real run --------------------------------------------------------------------
tmp=$(mktemp -d)
collector_pid=
prometheus_pid=
cleanup() {
  [ -n "$collector_pid" ] && kill -INT "$collector_pid" 2>/dev/null && wait "$collector_pid" 2>/dev/null || true
  [ -n "$prometheus_pid" ] && kill "$prometheus_pid" 2>/dev/null && wait "$prometheus_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# The collector: a 1 KiB in-flight byte bound, so that one request held open sheds the next.
"$BIN" collect --listen 127.0.0.1:0 --schemas schemas --good "$tmp/good.jsonl" --bad "$tmp/bad.jsonl" \
  --max-in-flight-bytes 1024 >"$tmp/collector.out" 2>"$tmp/collector.log" &
collector_pid=$!
wait_for 30 grep -q 'eventwire collector on http://' "$tmp/collector.log" ||
  fail "the collector did not start: $(cat "$tmp/collector.log")"
endpoint=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$tmp/collector.log" | head -n1)
port=${endpoint##*:}
say "collector on $endpoint"

# Prometheus, scraping it as job `eventwire` every second, with the rules.
prom_port=$(node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $PWD/$RULES
scrape_configs:
  - job_name: eventwire
    static_configs:
      - targets: ["127.0.0.1:$port"]
EOF
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
prometheus_pid=$!
prom="http://127.0.0.1:$prom_port"
wait_for 60 curl -sf "$prom/-/ready" -o /dev/null || fail "Prometheus did not start: $(cat "$tmp/prometheus.log")"
say "$(prometheus --version 2>&1 | head -n1) on $prom"

# An instant query's result (JSON array); fails on a query error.
query() {
  local answer
  answer=$(curl -sS "$prom/api/v1/query" --data-urlencode "query=$1") || return 1
  if [ "$(jq -r .status <<<"$answer")" != success ]; then
    printf '%s\n' "$(jq -r '.error // .' <<<"$answer")" >&2
    return 1
  fi
  jq -c .data.result <<<"$answer"
}
has_series() { [ "$(query "$1" | jq length)" -gt 0 ]; }
metric() { curl -sf "$endpoint/metrics" | awk -v name="$1" '$1 == name { print $2 }'; }

# Traffic: service `eventwire-check`, version 1.0.0 healthy, 1.0.1 dead-lettering half its events.
printf '%s\n' \
  '{"schema":"iglu:com.example.web/search/jsonschema/1-0-0","data":{"query":"shoes","results_count":3}}' \
  '{"schema":"iglu:com.example.web/page_view/jsonschema/1-0-0","data":{"url":"https://shop.example/"}}' \
  >"$tmp/good.in"
printf '%s\n' \
  '{"schema":"iglu:com.example.web/search/jsonschema/1-0-0","data":{"query":"boots","results_count":1}}' \
  '{"schema":"iglu:com.example.web/search/jsonschema/1-0-0","data":{"query":"","results_count":1}}' \
  >"$tmp/bad.in"

# One batch of one page view of service eventwire-check 1.0.0, with event id $1.
batch() {
  local now
  now=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
  printf '{"sent_at":"%s","events":[{"event_id":"%s","schema":"iglu:com.example.web/page_view/jsonschema/1-0-0","data":{"url":"https://shop.example/check"},"created_at":"%s","context":{"labels":{"service":"eventwire-check","version":"1.0.0"},"library":{"name":"deploy-check","version":"0"},"anonymous_id":"check"}}]}' \
    "$now" "$1" "$now"
}
post() { curl -sS -o "$tmp/answer" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$1" "$endpoint/v1/batch"; }

round() {
  local r=$1 out code body fd status
  out=$("$BIN" send --endpoint "$endpoint" --service eventwire-check --version 1.0.0 "$tmp/good.in" 2>&1) ||
    fail "eventwire send (good events) failed: $out"
  if out=$("$BIN" send --endpoint "$endpoint" --service eventwire-check --version 1.0.1 "$tmp/bad.in" 2>&1) ||
    ! grep -q '^rejected: *1$' <<<"$out"; then
    fail "eventwire send (one dead letter) should exit 1 with 1 rejected: $out"
  fi
  # The same event twice: accepted, then a duplicate.
  body=$(batch "0193a5b2-0000-7000-8000-0000000000d$r")
  code=$(post "$body")
  [ "$code" = 200 ] || fail "batch: $code $(cat "$tmp/answer")"
  code=$(post "$body")
  [ "$code" = 200 ] && grep -q '"duplicates":1' "$tmp/answer" || fail "resent batch: $code $(cat "$tmp/answer")"
  # Shedding: a request whose body has begun to arrive holds the whole byte bound, so the
  # next is answered 503 at once; then the first is finished.
  body=$(batch "0193a5b2-0000-7000-8000-0000000000e$r")
  exec {fd}<>"/dev/tcp/127.0.0.1/$port"
  printf 'POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "${#body}" "${body:0:10}" >&"$fd"
  wait_for 10 test "$(metric eventwire_in_flight_bytes)" != 0 || fail "the held request holds no bytes"
  code=$(post "$(batch "0193a5b2-0000-7000-8000-0000000000f$r")")
  [ "$code" = 503 ] || fail "the request beside a held one should be shed (503), got $code $(cat "$tmp/answer")"
  printf '%s' "${body:10}" >&"$fd"
  IFS= read -r -t 10 status <&"$fd" || true
  exec {fd}>&-
  [[ "$status" == "HTTP/1.1 200"* ]] || fail "the held request: ${status:-no answer}"
  # Wait for Prometheus to have scraped all of it (the shed request came last).
  wait_for 30 has_series "eventwire_requests_shed_total{job=\"eventwire\"} >= $r" ||
    fail "Prometheus did not scrape round $r: $(cat "$tmp/prometheus.log")"
}
# Two rounds: Prometheus sees each series first with round 1's counts, so round 2 gives rates.
round 1
round 2
say "sent 2 rounds: $(metric 'eventwire_events_accepted_total{service="eventwire-check",version="1.0.0"}') + $(metric 'eventwire_events_accepted_total{service="eventwire-check",version="1.0.1"}') accepted, $(metric 'eventwire_events_rejected_total{code="schema_invalid",service="eventwire-check",version="1.0.1"}') dead-lettered, $(metric 'eventwire_events_duplicate_total{service="eventwire-check",version="1.0.0"}') duplicates, $(metric 'eventwire_requests_shed_total{reason="bytes"}') shed"

# The scrape.
curl -sf "$endpoint/metrics" >"$tmp/metrics" || fail "GET /metrics"

# Every rule evaluated, none in error, once the recording rules have the second round.
wait_for 30 has_series 'service_version:eventwire_other_versions_dead_letter_ratio:rate1h{service="eventwire-check"}' ||
  fail "the recording rules gave no baseline for eventwire-check"
curl -sf "$prom/api/v1/rules" >"$tmp/rules.json" || fail "GET /api/v1/rules"
errors=$(jq -r '.data.groups[].rules[] | select(.health != "ok") | "\(.name): \(.health) \(.lastError // "")"' "$tmp/rules.json")
[ -z "$errors" ] || fail "rules not evaluated cleanly: $errors"
say "rules: $(jq '[.data.groups[].rules[]] | length' "$tmp/rules.json") evaluated on the run's data, all healthy"

# The ratios the run produced: 1.0.1 dead-lettered 1 of 2 events a round, 1.0.0 none.
ratio() { query "round($1, 0.001)" | jq -r '.[0].value[1] // "none"'; }
for check in \
  'service_version:eventwire_dead_letter_ratio:rate10m{service="eventwire-check",version="1.0.1"} 0.5' \
  'service_version:eventwire_dead_letter_ratio:rate10m{service="eventwire-check",version="1.0.0"} 0' \
  'service_version:eventwire_other_versions_dead_letter_ratio:rate1h{service="eventwire-check",version="1.0.0"} 0.5' \
  'service_version:eventwire_other_versions_dead_letter_ratio:rate1h{service="eventwire-check",version="1.0.1"} 0'; do
  got=$(ratio "${check% *}")
  [ "$got" = "${check##* }" ] || fail "${check% *} is $got, expected ${check##* }"
done
say "recording rules: eventwire-check 1.0.1 dead-letters 50 %, 1.0.0 0 %, each the other's baseline"

# The dashboard's queries (panels and variables), with Grafana's variables filled in.
jq -c '
  def panels: .panels[] | (., (.panels // [])[]);
  [ (panels | select(.targets) | .title as $t | .targets[] | {where: "panel \"\($t)\" \(.refId)", expr}),
    (.templating.list[] | select(.type == "query") | {where: "variable $\(.name)", expr: .definition}) ]
' "$DASHBOARD" >"$tmp/dashboard-queries.json"
jq -c '[.data.groups[].rules[] | {where: "rule \(.name)", expr: .query}]' "$tmp/rules.json" >"$tmp/rule-queries.json"
jq -r '[.data.groups[].rules[] | select(.type == "recording") | .name] | join(" ")' "$tmp/rules.json" >"$tmp/recorded"

# Metric names in PromQL: a tokenizer, not a parser. Strings, label matchers ({…}), ranges
# ([…]), Grafana variables, numbers and durations are skipped; so are the label lists of
# by/without/on/ignoring/group_left/group_right, aggregation operators, keywords, and names
# followed by `(` (functions). What is left is a metric name. `__name__="x"` counts as x;
# a regex on __name__ cannot be checked and fails the check.
node - "$tmp/metrics" "$tmp/recorded" "$tmp/rule-queries.json" "$tmp/dashboard-queries.json" >"$tmp/names.out" <<'JS' || {
const fs = require("fs");
const [scrapeFile, recordedFile, ...queryFiles] = process.argv.slice(2);

const scraped = new Set();
for (const line of fs.readFileSync(scrapeFile, "utf8").split("\n")) {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
  if (m) scraped.add(m[1]);
}
const recorded = new Set(fs.readFileSync(recordedFile, "utf8").split(/\s+/).filter(Boolean));
const ignored = new Set(["up"]); // Prometheus's own, per target

const AGGREGATIONS = new Set(["sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
  "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"]);
const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
  "by", "without", "on", "ignoring", "group_left", "group_right", "start", "end"]);
const LISTS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
const STRING = String.raw`"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|` + "`[^`]*`";
const TOKEN = new RegExp([
  String.raw`(?<space>\s+|#[^\n]*)`,
  `(?<string>${STRING})`,
  String.raw`(?<matchers>\{(?:${STRING}|[^}"'` + "`" + String.raw`])*\})`,
  String.raw`(?<range>\[[^\]]*\])`,
  String.raw`(?<variable>\$\{[^}]*\}|\$\w+|\[\[\w+\]\])`,
  String.raw`(?<number>\d[\w.]*|\.\d[\w.]*)`,
  String.raw`(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)`,
  String.raw`(?<other>.)`,
].join("|"), "gys");

function metricNames(source) {
  let expr = source;
  // Grafana's label_values(query, label) and query_result(query): the query inside.
  let m = /^\s*label_values\s*\(\s*(.*?)\s*,\s*[a-zA-Z_]\w*\s*\)\s*$/s.exec(expr);
  if (m) expr = m[1];
  else if (/^\s*label_values\s*\(\s*[a-zA-Z_]\w*\s*\)\s*$/.test(expr)) return [];
  else if ((m = /^\s*query_result\s*\((.*)\)\s*$/s.exec(expr))) expr = m[1];
  const tokens = [];
  for (const t of expr.matchAll(TOKEN)) {
    const [kind, text] = Object.entries(t.groups).find(([, v]) => v !== undefined);
    if (kind === "space") continue;
    tokens.push({ kind, text });
  }
  const names = [];
  for (let i = 0; i < tokens.length; i++) {
    const { kind, text } = tokens[i];
    if (kind === "matchers") {
      const inner = text.replace(new RegExp(STRING, "g"), (s) => s.replace(/[{}=~!,]/g, " "));
      if (/__name__\s*(=~|!=|!~)/.test(inner)) throw new Error(`a regex or negated __name__ cannot be checked: ${text}`);
      const exact = /__name__\s*=\s*(["'`])(.*?)\1/.exec(text);
      if (exact) names.push(exact[2]);
      continue;
    }
    if (kind !== "name") continue;
    const lower = text.toLowerCase();
    const next = tokens[i + 1];
    if (LISTS.has(lower) && next && next.text === "(") {
      // Skip the label list.
      let depth = 0;
      for (i++; i < tokens.length; i++) {
        if (tokens[i].text === "(") depth++;
        if (tokens[i].text === ")" && --depth === 0) break;
      }
      continue;
    }
    if (AGGREGATIONS.has(lower) || KEYWORDS.has(lower)) continue;
    if (next && next.text === "(") continue; // a function
    names.push(text);
  }
  return names;
}

const used = new Map(); // name -> where
let problems = 0;
for (const file of queryFiles) {
  for (const { where, expr } of JSON.parse(fs.readFileSync(file, "utf8"))) {
    let names;
    try {
      names = metricNames(expr);
    } catch (e) {
      console.log(`MISSING ${where}: ${e.message}`);
      problems++;
      continue;
    }
    for (const name of names) {
      if (recorded.has(name) || ignored.has(name)) continue;
      if (!used.has(name)) used.set(name, []);
      used.get(name).push(where);
    }
  }
}
const missing = [...used.keys()].filter((n) => !scraped.has(n)).sort();
for (const name of missing) {
  console.log(`MISSING ${name}: not in the collector's /metrics, used by ${used.get(name).join(", ")}`);
}
console.log(`USED ${[...used.keys()].sort().join(" ")}`);
process.exit(missing.length + problems > 0 ? 1 : 0);
JS
  grep '^MISSING' "$tmp/names.out" | sed 's/^MISSING /deploy: /' >&2
  fail "metric names used by the rules or the dashboard are not in a real scrape (scrape: $(grep -c '^[a-z]' "$tmp/metrics") samples)"
}
used=$(sed -n 's/^USED //p' "$tmp/names.out")
say "metric names: all $(wc -w <<<"$used") used by the rules and the dashboard are in the scrape: $used"

# Every dashboard query runs on Prometheus and shows something.
empty=
while IFS=$'\t' read -r where expr; do
  expr=$(sed -E 's/\$__rate_interval|\$\{__rate_interval\}/1m/g; s/\$__range|\$\{__range\}|\$__interval|\$\{__interval\}/5m/g;
                 s/\$\{?job\}?/eventwire/g; s/\$\{?[a-z_]+\}?/.*/g' <<<"$expr")
  expr=$(sed -E 's/^label_values\((.*), *[a-zA-Z_]+\)$/\1/' <<<"$expr")
  result=$(query "$expr") || fail "$where: the query does not run: $expr"
  [ "$(jq length <<<"$result")" -gt 0 ] || empty+="$where; "
done < <(jq -r '.[] | [.where, (.expr | gsub("\n"; " "))] | @tsv' "$tmp/dashboard-queries.json")
[ -z "$empty" ] || fail "dashboard queries that return nothing after the run: $empty"
say "dashboard: all $(jq length "$tmp/dashboard-queries.json") queries run on Prometheus and return series"
say "ok"
