# syntax=docker/dockerfile:1
# Piraja Tickets: one static-ish binary on a small Debian image, running as a non-root user.
#
#   docker build -t piraja .
#   docker run -p 8080:8080 -v piraja-data:/data -e SLACK_SIGNING_SECRET=… piraja

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
ENV SQLX_OFFLINE=true CARGO_TERM_COLOR=never
# Dependencies first: this layer is reused until Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo .cargo
RUN mkdir -p src migrations \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src target/release/.fingerprint/piraja-* target/release/deps/piraja-* target/release/deps/libpiraja-*
# Then the application itself.
COPY migrations migrations
COPY .sqlx .sqlx
COPY manifests manifests
COPY src src
RUN cargo build --release --locked --bin piraja && strip target/release/piraja

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin piraja \
 && mkdir -p /data && chown piraja:piraja /data
COPY --from=build /src/target/release/piraja /usr/local/bin/piraja
USER piraja
WORKDIR /data
ENV PIRAJA_BIND=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/piraja.db \
    PIRAJA_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["piraja"]
CMD ["serve"]
