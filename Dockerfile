# syntax=docker/dockerfile:1
# One image for every Isoplane service; the compose file picks the binary per service:
# isoplane-signaling, isoplane-assets, isoplane-sfu, isoplane-turn, isoplane (all-in-one
# and world tools), and the admin scripts isoplane-token and isoplane-publish-world.

# ---- build -------------------------------------------------------------------------------
FROM rust:1.95.0-slim-trixie AS build
# C toolchains for aws-lc-sys (str0m's DTLS), ring and the bundled SQLite.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       cmake make g++ perl pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cargo's registry and target dir live in BuildKit caches so rebuilds are incremental;
# the binaries are copied out of the cache into /out.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
      -p isoplane-signaling --bin isoplane-signaling \
      -p isoplane-assets --bin isoplane-assets \
      -p isoplane-sfu --bin isoplane-sfu \
      -p isoplane-turn --bin isoplane-turn \
      -p isoplane --bin isoplane \
    && mkdir /out \
    && cp target/release/isoplane-signaling target/release/isoplane-assets \
          target/release/isoplane-sfu target/release/isoplane-turn target/release/isoplane /out/

# ---- runtime -----------------------------------------------------------------------------
FROM debian:13.1-slim
# curl: the compose healthchecks and isoplane-publish-world; openssl: isoplane-token.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       ca-certificates curl openssl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin isoplane
COPY --from=build /out/ /usr/local/bin/
COPY deploy/bin/ /usr/local/bin/
# The demo world, for the first start (the compose file's `tools` service publishes it).
COPY worlds/demo/world.json /usr/local/share/isoplane/worlds/demo/world.json
COPY worlds/demo/assets/ /usr/local/share/isoplane/worlds/demo/assets/
USER isoplane:isoplane
WORKDIR /tmp
# signaling, assets, SFU HTTP, SFU ICE-TCP, SFU media, TURN, TURN health
EXPOSE 8080 8090 7880 7881 7882-7885/udp 3478 3478/udp 9478
CMD ["isoplane", "--help"]
