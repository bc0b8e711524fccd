#!/usr/bin/env bash
# parafetch on more loops: the compare bench's https and keep-alive 1 KiB cells with
# parafetch at 1, 2, 4, ... threads up to the machine's cores (and reqwest-mt on as many
# workers), for a machine bigger than the 2-core one docs/benchmarks.md was measured on.
# Judge CPU µs/req first: it must not grow with threads. req/s is capped by nginx, which
# runs one worker and shares the cores with the client.
#   benches/scale.sh [more compare flags, e.g. --runs 3]
set -euo pipefail
cd "$(dirname "$0")/.."
cores=$(nproc)
threads=1
for ((t = 2; t <= cores; t *= 2)); do threads+=",$t"; done
# A core count that is not a power of two is measured too.
[[ ",$threads," == *",$cores,"* ]] || threads+=",$cores"
exec cargo bench --bench compare --features bench-peers -- \
    --threads "$threads" --only https --only "keep-alive 1 KiB" "$@"
