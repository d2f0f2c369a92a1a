// The small test harness of the node suites (tests/browser, tests/npm-cli): named tests run
// in order, each failure printed with its stack, and a summary line that scripts/test.sh
// adds up ("test result: ok. N passed; M failed (suite)").
//
// ONLY_TEST=<part of a name> (or BROWSER_TEST, its older name): only the tests whose name
// has it (while working on one).
export function suite(label) {
  let passed = 0, failed = 0;
  const only = process.env.ONLY_TEST || process.env.BROWSER_TEST;
  return {
    async test(name, fn) {
      if (only && !name.includes(only)) return;
      const t0 = Date.now();
      try {
        await fn();
        passed++;
        console.log(`ok   ${name} (${Date.now() - t0} ms)`);
      } catch (e) {
        failed++;
        console.log(`FAIL ${name}\n     ${e.stack.split("\n").join("\n     ")}`);
      }
    },
    /** Prints the summary and ends the process: status 1 when a test failed. */
    finish() {
      console.log(`\ntest result: ${failed ? "FAILED" : "ok"}. ${passed} passed; ${failed} failed (${label})`);
      process.exit(failed ? 1 : 0);
    },
  };
}

/** Throws `message` unless `cond`. */
export function check(cond, message) {
  if (!cond) throw new Error(message);
}
