#!/usr/bin/env bash
# Builds the image flavours (aws, azure, gcp, all) for linux/amd64 and linux/arm64 offline: a static
# musl binary per flavour and architecture, put FROM scratch with the Debian CA bundle by buildah
# (no base image is pulled), one OCI image index per flavour holding both architectures.
#
#   scripts/build-images.sh [--arch amd64|arm64|amd64,arm64] [--push REPOSITORY] [flavour ...]
#
# Defaults: both architectures, all four flavours. Writes, per flavour:
#   target/images/<flavour>.oci.tar                  OCI archive of the image index (all arches)
#   target/images/csi-secrets-provider-<flavour>-<arch>   the static binary in that image
# and prints the binary and image size per architecture. With --push, the index and its images
# go to REPOSITORY:<version>-<flavour> (any registry buildah can log in to) and the pushed
# index digest is written to target/images/<flavour>.digest. The release workflow
# (.github/workflows/release.yml) calls this script; CI calls it for arm64 (scripts/smoke-arm64.sh).
#
# amd64 is built with Debian's musl-gcc; arm64 is cross-built with zig as the C compiler and
# linker (cargo-zigbuild and ziglang from PyPI, into .venv), which also cross-compiles aws-lc.
set -euo pipefail
cd "$(dirname "$0")/.."

arches=(amd64 arm64)
push=""
flavours=()
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) IFS=, read -r -a arches <<< "$2"; shift 2 ;;
    --push) push=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) flavours+=("$1"); shift ;;
  esac
done
[ ${#flavours[@]} -gt 0 ] || flavours=(aws azure gcp all)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

# Debian/Ubuntu packages are installed as root: directly when the script runs as root (CI, a
# container), through sudo on a laptop.
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# A venv that works (a half-made one, say from an interrupted run or a python3 without the venv
# module, is made again); arm64 builds take zig from PyPI into it.
ensure_venv() {
  if [ -x .venv/bin/python ] && .venv/bin/python -m pip --version >/dev/null 2>&1; then
    return
  fi
  rm -rf .venv
  python3 -m venv .venv
}

need=()
command -v buildah >/dev/null || need+=(buildah)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
for arch in "${arches[@]}"; do
  case "$arch" in
    amd64) command -v musl-gcc >/dev/null || need+=(musl-tools) ;;
    # Debian and Ubuntu split the venv module (ensurepip) out of python3.
    arm64) python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv) ;;
    *) echo "unknown architecture $arch (amd64, arm64)" >&2; exit 2 ;;
  esac
done
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]} (apt-get)" >&2
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

triple() { case "$1" in amd64) echo x86_64-unknown-linux-musl ;; arm64) echo aarch64-unknown-linux-musl ;; esac; }

# Builds target/<triple>/release/csi-secrets-provider for one architecture and feature set.
build_binary() { # arch features
  local arch=$1 features=$2 target
  target=$(triple "$arch")
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
  echo "==> $arch: cargo build --release --target $target --features $features" >&2
  case "$arch" in
    amd64)
      CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release --locked --target "$target" \
        -p csi-secrets-provider --no-default-features --features "$features" >&2 ;;
    arm64)
      ensure_venv
      if [ ! -x .venv/bin/cargo-zigbuild ] || ! .venv/bin/python -c 'import ziglang' 2>/dev/null; then
        .venv/bin/pip install --quiet --disable-pip-version-check "ziglang==0.17.1" "cargo-zigbuild==0.24.1" >&2
      fi
      # cargo-zigbuild finds zig through the venv's python (ziglang package).
      PATH="$PWD/.venv/bin:$PATH" cargo zigbuild --release --locked --target "$target" \
        -p csi-secrets-provider --no-default-features --features "$features" >&2 ;;
  esac
  echo "${CARGO_TARGET_DIR:-target}/$target/release/csi-secrets-provider"
}

# vfs storage and chroot isolation work inside containers and unprivileged sandboxes.
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
mkdir -p target/images
for flavour in "${flavours[@]}"; do
  case "$flavour" in
    aws|azure|gcp) features=$flavour,mimalloc ;;
    all) features=aws,azure,gcp,mimalloc ;;
    *) echo "unknown flavour $flavour (aws, azure, gcp, all)" >&2; exit 2 ;;
  esac
  index="csi-secrets-provider:$version-$flavour"
  buildah manifest rm "$index" >/dev/null 2>&1 || true
  buildah rmi "$index" >/dev/null 2>&1 || true
  buildah manifest create "$index" >/dev/null
  for arch in "${arches[@]}"; do
    binary=$(build_binary "$arch" "$features")
    copy="target/images/csi-secrets-provider-$flavour-$arch"
    cp "$binary" "$copy"
    # A static binary has no program interpreter (file(1) is not on every machine).
    if readelf -l "$copy" 2>/dev/null | grep -q "program interpreter"; then
      echo "$copy is not static" >&2; exit 1
    fi

    ctr=$(buildah from --arch "$arch" --os linux scratch)
    buildah copy "$ctr" "$copy" /csi-secrets-provider >/dev/null
    buildah copy "$ctr" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
    buildah config --arch "$arch" --os linux \
      --entrypoint '["/csi-secrets-provider"]' --cmd serve --user 65532:65532 \
      --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
      --env MIMALLOC_PURGE_DELAY=0 \
      --label org.opencontainers.image.title=csi-secrets-provider \
      --label org.opencontainers.image.version="$version" \
      --label org.opencontainers.image.licenses=Apache-2.0 \
      --label io.csi-secrets-provider.flavour="$flavour" "$ctr"
    image="csi-secrets-provider:$version-$flavour-$arch"
    buildah commit --quiet --rm "$ctr" "$image" >/dev/null
    buildah manifest add "$index" "$image" >/dev/null
    rm -f "target/images/$flavour-$arch.oci.tar"
    buildah push --quiet "$image" "oci-archive:target/images/$flavour-$arch.oci.tar:$image" >/dev/null
    binary_size=$(stat -c %s "$copy")
    archive_size=$(stat -c %s "target/images/$flavour-$arch.oci.tar")
    awk -v image="$image" -v b="$binary_size" -v a="$archive_size" \
      'BEGIN { printf "image %-38s binary %6.1f MiB   image archive %6.1f MiB\n", image, b / 1048576, a / 1048576 }'
    rm -f "target/images/$flavour-$arch.oci.tar"
  done
  rm -f "target/images/$flavour.oci.tar"
  buildah manifest push --all --quiet "$index" "oci-archive:target/images/$flavour.oci.tar:$index" >/dev/null
  echo "index $index ($(IFS=,; echo "${arches[*]}")) -> target/images/$flavour.oci.tar"
  if [ -n "$push" ]; then
    buildah manifest push --all --quiet --digestfile "target/images/$flavour.digest" \
      "$index" "docker://$push:$version-$flavour"
    echo "pushed $push:$version-$flavour@$(cat "target/images/$flavour.digest")"
  fi
done
