# syntax=docker/dockerfile:1
# Multi-stage build of one image flavour: FEATURES=aws, azure or "aws,azure" (all).
# Where no registry is reachable, scripts/build-images.sh builds the same images with buildah
# from scratch, without pulling any base image.
ARG FEATURES=aws,azure

FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
ARG FEATURES
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
      -p csi-secrets-provider --no-default-features --features "$FEATURES"

FROM debian:bookworm-slim AS certificates
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*

FROM scratch
COPY --from=certificates /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/csi-secrets-provider /csi-secrets-provider
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# Root without capabilities by default: the driver's provider directory is a root-owned
# hostPath. Run as 65532 where that directory is prepared for it (chart: podSecurityContext).
USER 0:0
ENTRYPOINT ["/csi-secrets-provider"]
CMD ["serve"]
