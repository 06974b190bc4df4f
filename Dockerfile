# dial-a-service in a container (issue 10).
#
#   docker build -t dial-a-service .          # compiles in rust:…-bookworm, runs on bookworm-slim
#   docker compose up -d                       # see docker-compose.yml and the README
#
# Stages, in this order on purpose: the runtime stages come first, so that
# `--target prebuilt` never touches the Rust image, even with the legacy
# builder (which builds every stage above its target):
#
#   runtime   Debian slim + what the line needs at run time, a non-root user
#   prebuilt  runtime + a binary built outside Docker (CI: the one
#             `cargo test --release` already built), no compiler needed:
#               cargo build --release && docker build --target prebuilt .
#   build     compiles the line in the official Rust image
#   (last)    runtime + the binary from `build`: what `docker build .` gives
#
# BASE and RUST_IMAGE name the images, so a machine without a registry can
# substitute its own (CI imports a debootstrap'd bookworm as BASE).
ARG BASE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1-bookworm

FROM ${BASE} AS runtime
# At run time the binary links libopus (and libc, libgcc_s, libm: in every
# Debian image); espeak-ng speaks the church's name and the services' titles;
# CA certificates check a parish website's schedule and audio over HTTPS.
# Nothing else: no sox or ffmpeg (decoding is in-process, symphonia).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libopus0 espeak-ng ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A fixed uid, so a host folder mounted as the cache can be given to it
# (chown 10001:10001). No login shell, no home beyond the line's folder.
RUN groupadd --system --gid 10001 dial-a-service \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /srv/dial-a-service --shell /usr/sbin/nologin dial-a-service
# The repository's layout, so the shipped config's relative paths hold:
# config/ (dial-a-service.toml, data.json), audio/ and cache/ beside it.
# Each is a volume in docker-compose.yml; the copies here are the defaults
# a bare `docker run` plays (the sample service).
WORKDIR /srv/dial-a-service
COPY config/ config/
COPY audio/ audio/
RUN mkdir cache && chown dial-a-service:dial-a-service cache
VOLUME ["/srv/dial-a-service/cache"]
# Inside a container 127.0.0.1 is no use to callers: listen on every
# address (set DAS_SIP_PUBLIC_ADDRESS to the host's reachable address).
ENV DAS_SIP_LISTEN=0.0.0.0:5060
USER dial-a-service
# Exec form: the line is the process `docker stop` signals (or tini's child
# with `init: true`), so SIGTERM reaches it and it hangs up every call with
# BYE before exiting 0.
ENTRYPOINT ["/usr/local/bin/dial-a-service"]
CMD ["run", "--config", "config/dial-a-service.toml"]
STOPSIGNAL SIGTERM

FROM runtime AS prebuilt
# A binary built on bookworm (or older glibc); the path is in the context.
ARG PREBUILT=target/release/dial-a-service
COPY --chown=root:root ${PREBUILT} /usr/local/bin/dial-a-service

FROM ${RUST_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends pkg-config libopus-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin dial-a-service \
 && strip target/release/dial-a-service \
 && cp target/release/dial-a-service /usr/local/bin/dial-a-service

FROM runtime
COPY --from=build /usr/local/bin/dial-a-service /usr/local/bin/dial-a-service
