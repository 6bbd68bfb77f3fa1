#!/usr/bin/env bash
# Builds the arm64 `all` image with the same script the release uses, then runs its binary under
# qemu-user: --version, validate on the examples, a Version call over each socket and a mount
# through each cloud's test peer (tests/src/bin/smoke-binary.rs). Needs moto running
# (MOTO_ENDPOINT), as scripts/test.sh starts it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-aarch64-static >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static >/dev/null
fi
target_dir="${CARGO_TARGET_DIR:-target}"
# The client first: under .ci/run (CI_TRIM_TARGET=1) the debug build is then done with and goes,
# leaving the disk to the release cross-build.
cargo build --locked -p csi-secrets-provider-tests --bin smoke-binary
client="$target_dir/smoke-client"
cp "$target_dir/debug/smoke-binary" "$client"
if [ "${CI_TRIM_TARGET:-}" = 1 ]; then
  rm -rf "$target_dir/debug"
fi
scripts/build-images.sh --arch arm64 all
"$client" --binary target/images/csi-secrets-provider-all-arm64 --runner "$(command -v qemu-aarch64-static)"
