package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const annotated = `apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata:
      labels: {app: api}
      annotations:
        kafka-sidecar.io/inject: "true"
        kafka-sidecar.io/topics: orders
        kafka-sidecar.io/group: api
        kafka-sidecar.io/app-port: "%s"
    spec:
      containers: [{name: api, image: api:1}]
`

func TestInjectCommand(t *testing.T) {
	good := strings.Replace(annotated, "%s", "8080", 1)
	t.Run("stdin to stdout with flag defaults", func(t *testing.T) {
		var out, errOut bytes.Buffer
		code := runInject([]string{"--brokers", "kafka:9092", "--image", "ks:1", "--env", "SIDECAR_DEDUP=memory"}, strings.NewReader(good), &out, &errOut)
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		for _, want := range []string{"name: kafka-sidecar", "image: ks:1", "value: kafka:9092", "value: memory", "restartPolicy: Always"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
	})
	t.Run("file and defaults file", func(t *testing.T) {
		dir := t.TempDir()
		in, defaults := filepath.Join(dir, "in.yaml"), filepath.Join(dir, "defaults.yaml")
		if err := os.WriteFile(in, []byte(good), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(defaults, []byte("image: from-file:2\nnamespaces:\n  shop:\n    brokers: shop-kafka:9092\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		if code := runInject([]string{"-f", in, "--defaults", defaults}, strings.NewReader(""), &out, &errOut); code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		for _, want := range []string{"image: from-file:2", "value: shop-kafka:9092"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
	})
	t.Run("bad annotation: exit 2 naming it, nothing written", func(t *testing.T) {
		var out, errOut bytes.Buffer
		code := runInject([]string{"--brokers", "kafka:9092"}, strings.NewReader(good+"---\n"+strings.Replace(annotated, "%s", "http", 1)), &out, &errOut)
		if code != exitConfig {
			t.Fatalf("exit %d, want %d", code, exitConfig)
		}
		if out.Len() != 0 {
			t.Fatalf("wrote %q", out.String())
		}
		if !strings.Contains(errOut.String(), "document 2: Deployment shop/api: annotation kafka-sidecar.io/app-port") {
			t.Fatalf("stderr %q does not name the annotation", errOut.String())
		}
	})
	t.Run("bad defaults: exit 2", func(t *testing.T) {
		var out, errOut bytes.Buffer
		if code := runInject([]string{"--env", "REDIS=x"}, strings.NewReader(good), &out, &errOut); code != exitConfig || !strings.Contains(errOut.String(), "REDIS") {
			t.Fatalf("exit %d, stderr %q", code, errOut.String())
		}
	})
}
