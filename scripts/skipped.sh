#!/usr/bin/env bash
# The closing line of make test: what was skipped and how to run it, in
# ONE line, from the file the tests recorded their skips in (testenv.Missing
# writes "need<TAB>how to run it<TAB>test" per skipped test; a script step
# may too; testenv.Partly adds "<TAB>what the test did instead" for a test
# that ran in part). Tests that skipped, or ran in part, for the same reason
# are counted together.
# Under CI=true, where everything must run, any skip fails the run.
#
#   scripts/skipped.sh FILE
set -euo pipefail
file=${1:?usage: $0 FILE}

if [[ ! -s $file ]]; then
  echo "make test: nothing skipped"
  exit 0
fi
line=$(awk -F '\t' '
  NF >= 4 { key = $1 "\t" $2 "\t" $4; if (!(key in p)) porder[++pk] = key; p[key]++; ptotal++; next }
  { key = $1 "\t" $2; if (!(key in n)) order[++k] = key; n[key]++; total++ }
  END {
    if (total > 0) {
      printf "make test: SKIPPED %d:", total
      for (i = 1; i <= k; i++) {
        split(order[i], f, "\t")
        printf "%s %d needing %s (to run: %s)", (i > 1 ? ";" : ""), n[order[i]], f[1], f[2]
      }
    } else {
      printf "make test: nothing skipped"
    }
    if (ptotal > 0) {
      printf "; RAN IN PART %d:", ptotal
      for (i = 1; i <= pk; i++) {
        split(porder[i], f, "\t")
        printf "%s %d needing %s, so %s (to run in full: %s)", (i > 1 ? ";" : ""), p[porder[i]], f[1], f[3], f[2]
      }
    }
  }' "$file")
if [[ ${CI:-} == true ]]; then
  echo "$line; CI=true runs everything, so this fails the run"
  exit 1
fi
echo "$line"
