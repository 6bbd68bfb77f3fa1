#!/usr/bin/env bash
# Runs a command with moto started (MOTO_ENDPOINT set), e.g. the remount benchmark:
#   scripts/with-moto.sh target/release/bench-remount --pods 100
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/moto.sh
source scripts/moto.sh
start_moto >&2
"$@"
