#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each (default 30s), one
# after another: `go test -fuzz` takes one target at a time. Seed corpora
# live in each package's testdata/fuzz/<Target>/ and run in every plain
# `go test` too.
#   scripts/fuzz.sh            all targets
#   FUZZTIME=5m scripts/fuzz.sh ./signal/
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-30s}"
pkgs=("$@")
[ ${#pkgs[@]} -eq 0 ] && pkgs=(./...)
failed=0
for pkg in $(go list "${pkgs[@]}"); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  targets=$(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)\(' "$dir"/*_test.go 2>/dev/null | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/' | sort -u || true)
  for t in $targets; do
    echo "fuzz: $pkg $t for $fuzztime"
    ok=0
    for try in 1 2; do
      if go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/fuzz-$$.log 2>&1; then
        ok=1
        break
      fi
      # Go's fuzzing engine sometimes gives up on a busy machine with
      # "context deadline exceeded" and no failing input: that is no
      # finding, so the target runs once more. A real failure writes its
      # input ("Failing input written to ...") and is not retried.
      if grep -q "Failing input written to" /tmp/fuzz-$$.log || ! grep -q "context deadline exceeded" /tmp/fuzz-$$.log; then
        break
      fi
      echo "fuzz: $t: the fuzzing engine timed out without a finding; running it again"
    done
    if [ $ok -eq 0 ]; then
      cat /tmp/fuzz-$$.log
      echo "fuzz: FAIL $pkg $t (the failing input is in $dir/testdata/fuzz/$t/)"
      failed=1
    else
      tail -1 /tmp/fuzz-$$.log
    fi
  done
done
rm -f /tmp/fuzz-$$.log
exit $failed
