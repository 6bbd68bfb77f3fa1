#!/usr/bin/env bash
# Builds the three image flavours (aws, azure, all) offline: a static musl binary per flavour,
# put FROM scratch with the Debian CA bundle by buildah (no base image is pulled), written as
# OCI archives to target/images/, and prints each image's size.
#   scripts/build-images.sh [aws|azure|all ...]     (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
flavours=("$@")
[ ${#flavours[@]} -gt 0 ] || flavours=(aws azure all)
target=x86_64-unknown-linux-musl
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

need=()
command -v musl-gcc >/dev/null || need+=(musl-tools)
command -v buildah >/dev/null || need+=(buildah)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

# vfs storage and chroot isolation work inside containers and unprivileged sandboxes.
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
mkdir -p target/images
for flavour in "${flavours[@]}"; do
  case "$flavour" in
    aws|azure) features=$flavour,mimalloc ;;
    all) features=aws,azure,mimalloc ;;
    *) echo "unknown flavour $flavour (aws, azure, all)" >&2; exit 2 ;;
  esac
  echo "==> $flavour: cargo build --release --target $target --features $features"
  CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release --locked --target "$target" \
    -p csi-secrets-provider --no-default-features --features "$features"
  binary="target/$target/release/csi-secrets-provider"
  cp "$binary" "target/images/csi-secrets-provider-$flavour"
  if ldd "$binary" 2>&1 | grep -q "=>"; then echo "$binary is not static" >&2; exit 1; fi

  ctr=$(buildah from scratch)
  buildah copy "$ctr" "target/images/csi-secrets-provider-$flavour" /csi-secrets-provider >/dev/null
  buildah copy "$ctr" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
  buildah config --entrypoint '["/csi-secrets-provider"]' --cmd serve --user 65532:65532 \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --label org.opencontainers.image.title=csi-secrets-provider \
    --label org.opencontainers.image.version="$version" \
    --label io.csi-secrets-provider.flavour="$flavour" "$ctr"
  image="csi-secrets-provider:$version-$flavour"
  buildah commit --quiet --rm "$ctr" "$image" >/dev/null
  rm -f "target/images/$flavour.oci.tar"
  buildah push --quiet "$image" "oci-archive:target/images/$flavour.oci.tar:$image" >/dev/null
  binary_size=$(stat -c %s "target/images/csi-secrets-provider-$flavour")
  archive_size=$(stat -c %s "target/images/$flavour.oci.tar")
  awk -v image="$image" -v b="$binary_size" -v a="$archive_size" \
    'BEGIN { printf "image %-32s binary %6.1f MiB   image archive %6.1f MiB\n", image, b / 1048576, a / 1048576 }'
done
