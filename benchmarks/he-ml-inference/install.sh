#!/bin/sh
# Puts hegpu's submission into a clone of the harness (fhe-benchmarking/ml-inference):
# replaces its submission/ and scripts/ with this folder's, and records where hegpu's sources
# are for scripts/build_task.sh. Then, from the clone: python3 harness/run_submission.py 0..3
set -eu
harness=${1:?usage: install.sh HARNESS_DIR}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ -d "$harness" ] || { echo "install.sh: $harness is not a directory" >&2; exit 1; }
rm -rf "$harness/submission" "$harness/scripts"
cp -R "$here/submission" "$here/scripts" "$harness/"
printf '%s\n' "$repo" > "$harness/submission/hegpu-source"
echo "install.sh: hegpu's submission is in $harness (sources: $repo)"
