// Package charts holds the tests of the Helm chart in kafka-sidecar/: helm lint --strict and helm template
// for every ci/*-values.yaml, strict decoding of each rendered object into its Kubernetes API type (an unknown
// field fails), and unit tests of the templates (the sidecar's env wiring, its native-sidecar shape, the
// optional monitoring, scaling and network objects, and the named templates used from a parent chart).
//
// The tests run the helm binary: from PATH, or from $(go env GOBIN) / $(go env GOPATH)/bin. Without it they
// skip, unless CI is set, where they fail and say how to install it.
package charts
