# syntax=docker/dockerfile:1
# Multi-stage build of one image flavour: FEATURES=aws, azure, gcp or "aws,azure,gcp" (all).
# Where no registry is reachable, scripts/build-images.sh builds the same images with buildah
# from scratch, without pulling any base image.
ARG FEATURES=aws,azure,gcp

FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
ARG FEATURES
# mimalloc: musl's allocator is slow under concurrency (docs/benchmarks.md); .cargo/config.toml
# sets its compiled-in defaults.
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
      -p csi-secrets-provider --no-default-features --features "$FEATURES,mimalloc"

FROM debian:bookworm-slim AS certificates
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*

FROM scratch
COPY --from=certificates /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/csi-secrets-provider /csi-secrets-provider
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# mimalloc returns freed memory at once instead of after 10 ms of further allocation on the same
# thread, which an idle provider never makes: after a burst of mounts RSS falls back (measured:
# docs/benchmarks.md, "Memory and the node's cores"). It has no compile-time default to set.
ENV MIMALLOC_PURGE_DELAY=0
# Non-root by default. The chart runs it as UID 0 without any capability, because the driver's
# provider directory is a root-owned hostPath; where that directory is writable for 65532, keep
# the image's user (chart: podSecurityContext.runAsUser=65532).
USER 65532:65532
ENTRYPOINT ["/csi-secrets-provider"]
CMD ["serve"]
