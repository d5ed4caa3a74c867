#!/usr/bin/env bash
# Installs what the test suite needs when it is missing. Safe to run again: each step is skipped once done.
set -euo pipefail
GOBIN="${GOBIN:-$(go env GOPATH)/bin}"
LINT_VERSION=v2.15.0
HELM_VERSION=v3.22.0

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v redis-server >/dev/null 2>&1; then
  echo "== installing redis-server (Debian package)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
# The Debian package starts a system instance on 6379; the tests start their own servers on free ports.

if ! "$GOBIN/golangci-lint" --version 2>/dev/null | grep -q "${LINT_VERSION#v}"; then
  echo "== installing golangci-lint $LINT_VERSION"
  GOBIN="$GOBIN" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$LINT_VERSION"
fi
# A helm built with `go install` does not know its own patch version: a stamp file records what was installed.
if [ ! -x "$GOBIN/helm" ] || [ "$(cat "$GOBIN/.helm-version" 2>/dev/null)" != "$HELM_VERSION" ]; then
  echo "== installing helm $HELM_VERSION"
  GOBIN="$GOBIN" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" > "$GOBIN/.helm-version"
fi
# promtool runs the alert rules' unit tests (charts/testdata/alerts_test.yaml); built from the Prometheus Go
# module like helm, with a stamp file for the same reason.
PROMTOOL_VERSION=v0.316.0
if [ ! -x "$GOBIN/promtool" ] || [ "$(cat "$GOBIN/.promtool-version" 2>/dev/null)" != "$PROMTOOL_VERSION" ]; then
  echo "== installing promtool (github.com/prometheus/prometheus $PROMTOOL_VERSION)"
  GOBIN="$GOBIN" go install "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
  echo "$PROMTOOL_VERSION" > "$GOBIN/.promtool-version"
fi
if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
  echo "== installing Java and Maven (for the real Kafka cluster)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jdk-headless maven >/dev/null
fi
# The Python tools of the tests (test/requirements.txt) live in one cached virtualenv, so the system Python is
# left alone; it is brought in step whenever that file changes.
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/kafka-sidecar/venv"
REQUIREMENTS="$(dirname "$0")/requirements.txt"
wanted="$(sha256sum <"$REQUIREMENTS" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$wanted" ]; then
  echo "== installing the Python test tools (virtualenv in $VENV)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$REQUIREMENTS"
  echo "$wanted" >"$VENV/.requirements.sha256"
fi
# The schema registry the schema-registry tests start (Apicurio Registry from Maven Central), cached after once.
"$(dirname "$0")/registry/registry.sh" fetch
