#!/usr/bin/env bash
# The whole test suite: formatting, clippy for every feature set, and the tests. This is the
# README's test command and what CI runs (.ci/run). It installs what it needs and starts the
# services the tests talk to; run it from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir"
# Free disk on the target directory's filesystem, printed with each step: a build that runs out
# of space then says so next to the step that filled it.
free_disk() { df -h --output=avail "$target_dir" | tail -1 | tr -d ' '; }
step() { printf '\n==> %s   [%s free]\n' "$*" "$(free_disk)"; }
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Under .ci/run (CI_TRIM_TARGET=1) the artifacts of a finished step are deleted when no later
# step uses them: a fresh machine's disk is not ours to size. Proc macros (`.so`) and build
# scripts are shared by clippy and the test builds and stay, so nothing is compiled twice.
trim_check_artifacts() {
  # A .rmeta without its .rlib is clippy's (check only); no test build reuses it. One with an
  # .rlib is a full build (a build script's dependency) and stays.
  if [ "${CI_TRIM_TARGET:-}" = 1 ]; then
    local rmeta
    for rmeta in "$target_dir"/debug/deps/*.rmeta; do
      [ -e "${rmeta%.rmeta}.rlib" ] || rm -f "$rmeta"
    done
  fi
}
trim_test_executables() {
  if [ "${CI_TRIM_TARGET:-}" = 1 ]; then
    find "$target_dir/debug/deps" -maxdepth 1 -type f -executable ! -name '*.so' -delete
    rm -rf "$target_dir/debug/incremental"
  fi
}

step "rustfmt"
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
cargo fmt --all --check

step "module layering: no crate's modules import each other in a circle"
python3 scripts/check-module-cycles.py
scripts/test-module-cycles.sh

step "clippy (default features: aws + azure + gcp, whole workspace)"
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
cargo clippy --workspace --all-targets --locked -- -D warnings
for features in "--no-default-features" "--no-default-features --features aws" "--no-default-features --features azure" "--no-default-features --features gcp"; do
  step "clippy (csi-secrets-provider $features)"
  # shellcheck disable=SC2086
  cargo clippy -p csi-secrets-provider $features --all-targets --locked -- -D warnings
done
trim_check_artifacts

step "supply chain: cargo deny (licenses, bans incl. a second TLS stack, sources; offline)"
# The advisory database cannot be fetched here; the release workflow checks advisories.
cargo deny --version 2>/dev/null | grep -q "0.20.2" || cargo install --locked --quiet cargo-deny@0.20.2
# cargo deny reads the metadata of every package in Cargo.lock, those of other platforms (e.g.
# Windows-only crates) too, which no build of ours downloads: fetch them all first.
cargo fetch --locked --quiet
cargo deny --offline check licenses bans sources

step "Helm chart: lint, render per flavour, validate against Kubernetes schemas"
scripts/test-chart.sh

step "release workflow: actionlint"
scripts/lint-workflows.sh

# moto: the AWS emulator the AWS backend's tests talk to (through a per-test proxy).
step "moto server (AWS emulator)"
# shellcheck source=scripts/moto.sh
source scripts/moto.sh
start_moto

# The pod runner (tests/src/pod.rs) starts the chart's rendered pod as kubelet would: mount
# namespaces (bubblewrap) and the pod's user and capabilities (util-linux setpriv).
# The PFX tests (crates/core/tests/pfx.rs) have a real tool make the files: openssl.
step "bubblewrap and setpriv (the pod runner), openssl (PFX files)"
if ! command -v bwrap >/dev/null || ! command -v setpriv >/dev/null || ! command -v openssl >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap util-linux openssl >/dev/null
fi
bwrap --version
openssl version

if cargo nextest --version >/dev/null 2>&1; then
  run_tests() { cargo nextest run --locked --no-fail-fast "$@"; }
else
  echo "cargo-nextest not found; using cargo test"
  run_tests() { cargo test --locked --no-fail-fast "$@"; }
fi

# The binary's feature-gated behaviour (which sockets, which errors) under each feature set.
# These rebuild only the binary crate and its tests.
for features in "--no-default-features" "--no-default-features --features aws" "--no-default-features --features azure" "--no-default-features --features gcp"; do
  step "tests (csi-secrets-provider $features)"
  # shellcheck disable=SC2086
  run_tests -p csi-secrets-provider $features
  trim_test_executables
done

step "tests (whole workspace, default features)"
run_tests --workspace
trim_test_executables

# The arm64 image's binary, built by the release's image script, run under qemu-user: a release
# build for another architecture (about 8 minutes on 2 cores). SKIP_ARM64_SMOKE=1 skips it in a
# local loop; CI never sets it.
if [ "${SKIP_ARM64_SMOKE:-}" = 1 ]; then
  step "arm64 smoke test: skipped (SKIP_ARM64_SMOKE=1)"
else
  step "arm64 smoke test (scripts/smoke-arm64.sh)"
  scripts/smoke-arm64.sh
fi
