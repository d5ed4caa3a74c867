# syntax=docker/dockerfile:1

# Build:  docker build --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) \
#           --build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ) -t ghcr.io/kafka-sidecar/kafka-sidecar:0.1.0 .
# test/image checks this file and builds the binary with the same go build line, so keep them in step.

ARG GO_VERSION=1.26.8

# The build runs on the builder's own platform and cross-compiles, which is fast for multi-arch images.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Module and build caches live in cache mounts, shared between builds and kept out of the layers.
ENV GOMODCACHE=/cache/mod GOCACHE=/cache/build
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/cache/mod \
    go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
# Static (no libc to match at run time), paths trimmed, symbols stripped, the version stamped into main.
RUN --mount=type=cache,target=/cache/mod \
    --mount=type=cache,target=/cache/build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/kafka-sidecar ./cmd/kafka-sidecar

# No shell and no package manager: CA certificates, tzdata and an unprivileged user only.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="kafka-sidecar" \
      org.opencontainers.image.description="Kafka consumer sidecar: delivers every record to the app over HTTP, dedups in Redis, commits after done, retries through retry topics to a dead-letter topic" \
      org.opencontainers.image.url="https://github.com/kafka-sidecar/kafka-sidecar" \
      org.opencontainers.image.source="https://github.com/kafka-sidecar/kafka-sidecar" \
      org.opencontainers.image.documentation="https://github.com/kafka-sidecar/kafka-sidecar#readme" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
COPY --from=build /out/kafka-sidecar /kafka-sidecar
# The distroless nonroot user, by number: Kubernetes can only prove runAsNonRoot for a numeric user.
USER 65532:65532
EXPOSE 9464
ENTRYPOINT ["/kafka-sidecar"]
