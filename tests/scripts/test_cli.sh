#!/usr/bin/env bash
# The drp command line: help, version, errors with the right exit codes, log format.
set -u
drp="$1"
fail=0
check() {  # check NAME EXPECTED_RC PATTERN -- command...
  local name="$1" want="$2" pattern="$3"; shift 4
  local out rc
  out="$("$@" 2>&1)"; rc=$?
  if [ "$rc" -ne "$want" ]; then echo "FAIL $name: exit $rc, wanted $want"; echo "$out" | head -20; fail=1; return; fi
  if ! grep -Eq -- "$pattern" <<<"$out"; then echo "FAIL $name: output lacks /$pattern/"; echo "$out" | head -20; fail=1; return; fi
  echo "ok   $name"
}
check help          0 'Usage: drp'                   -- "$drp" --help
check version       0 '^drp [0-9]+\.[0-9]+'          -- "$drp" --version
check no-command    2 'Commands:'                    -- "$drp"
check bad-level     1 'unknown log level'            -- "$drp" --log-level loud example --repo /nonexistent/x
check bad-option    2 'unrecognised|unrecognized'    -- "$drp" example --no-such-option
check cmd-help      0 'Options of .drp example'      -- "$drp" example --help
check missing-conf  1 'cannot open config file'      -- "$drp" --config /nonexistent.cfg example --repo /tmp/x
[ "$fail" -eq 0 ] && echo "cli: all checks passed"
exit "$fail"
