# ginit and the Gin example in one minimal image:
#   docker build -t ginit-example .
#   docker run --rm -p 8080:8080 ginit-example
# Both architectures (BuildKit):
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/ginit-example --push .
#
# The two builder stages can be replaced by prebuilt images (CI builds offline this way):
#   --build-arg GINIT_FROM=IMAGE   an image with a static /ginit and the /rootfs skeleton
#   --build-arg APP_FROM=IMAGE     an image with a static /app
# BuildKit skips the stages nobody references, so nothing is pulled for them.
ARG GINIT_FROM=ginit-build
ARG APP_FROM=app-build

# ginit: a static musl binary for the platform being built (TARGETARCH comes from BuildKit).
FROM rust:1-alpine AS ginit-build
ARG TARGETARCH
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY tests/support tests/support
RUN case "$TARGETARCH" in \
      amd64|"") target=x86_64-unknown-linux-musl ;; \
      arm64) target=aarch64-unknown-linux-musl ;; \
      *) echo "unsupported architecture $TARGETARCH" >&2; exit 1 ;; \
    esac \
 && cargo build --release --locked --target "$target" --bin ginit \
 && cp "target/$target/release/ginit" /ginit \
 && mkdir -p /rootfs/run/ginit /rootfs/tmp \
 && chmod 1777 /rootfs/tmp

# The Gin example (docker/app): a static Go binary.
FROM golang:1.22-alpine AS app-build
WORKDIR /src
COPY docker/app/ ./
RUN go mod tidy && CGO_ENABLED=0 go build -trimpath -o /app .

FROM ${GINIT_FROM} AS ginit
FROM ${APP_FROM} AS app

# The runtime: nothing but ginit, the app and the config.
FROM scratch
COPY --from=ginit --chown=65532:65532 /rootfs/ /
COPY --from=ginit /ginit /sbin/ginit
COPY --from=app /app /app/server
COPY docker/ginit.yaml /etc/ginit.yaml
# Not root: ginit, the app and the control socket (in /run/ginit) all run as 65532.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/sbin/ginit"]
