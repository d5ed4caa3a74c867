package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-sidecar/kafka-sidecar/dlq"
	"github.com/kafka-sidecar/kafka-sidecar/envelope"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
)

func runDLQCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code = runDLQ(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDLQFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"no subcommand", nil, exitConfig},
		{"unknown subcommand", []string{"purge"}, exitConfig},
		{"help", []string{"--help"}, exitOK},
		{"subcommand help", []string{"replay", "-h"}, exitOK},
		{"bad offsets", []string{"list", "--offsets", "7"}, exitConfig},
		{"bad since", []string{"list", "--since", "yesterday"}, exitConfig},
		{"since after until", []string{"list", "--since", "1h", "--until", "2h"}, exitConfig},
		{"bad status", []string{"list", "--status", "42"}, exitConfig},
		{"bad output", []string{"list", "--output", "xml"}, exitConfig},
		{"replay flag on list", []string{"list", "--dry-run"}, exitConfig},
		{"zero max replays", []string{"replay", "--max-replays", "0"}, exitConfig},
		{"negative rate", []string{"replay", "--rate", "-1"}, exitConfig},
		{"stray argument", []string{"list", "extra"}, exitConfig},
		{"missing configuration", []string{"list"}, exitConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SIDECAR_KAFKA_BROKERS", "")
			code, stdout, stderr := runDLQCmd(t, tt.args...)
			if code != tt.want {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tt.want, stdout, stderr)
			}
			if code == exitOK && !strings.Contains(stdout, "--max-replays") {
				t.Fatalf("help does not describe the flags: %q", stdout)
			}
		})
	}
}

// TestDLQCommands runs list (table and JSON) and replay (dry run, real, repeated) through the command.
func TestDLQCommands(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders", "orders.g1.dlq"))
	if err != nil {
		t.Fatalf("starting fake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	rs := redistest.Start(t, redistest.Options{})
	t.Setenv("SIDECAR_KAFKA_BROKERS", strings.Join(c.ListenAddrs(), ","))
	t.Setenv("SIDECAR_KAFKA_TOPICS", "orders")
	t.Setenv("SIDECAR_KAFKA_GROUP", "g1")
	t.Setenv("SIDECAR_REDIS_URL", rs.URL())
	t.Setenv("SIDECAR_LOG_LEVEL", "warn")

	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, dlq.ProducerOpts()...)...)
	if err != nil {
		t.Fatalf("creating producer: %v", err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, reason := range []string{"http 422: bad order", "http 503: database\tdown\nagain"} {
		src := &kgo.Record{Topic: "orders", Offset: int64(10 + i), Key: []byte{'k', byte('0' + i)}, Value: []byte("v")}
		rec := envelope.DeadLetter(src, envelope.Provenance{ID: "orders/0/" + string(rune('0'+i)), OriginalTopic: "orders",
			OriginalOffset: int64(10 + i), Attempts: 1, Error: reason, ErrorStatus: 422 + 81*i}, "orders.g1.dlq")
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatalf("producing dead letter: %v", err)
		}
	}

	code, out, errOut := runDLQCmd(t, "list")
	if code != exitOK {
		t.Fatalf("dlq list: exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "TOPIC") || !strings.Contains(lines[2], "database down again") {
		t.Fatalf("dlq list table:\n%s\nwant a header and 2 single-line rows", out)
	}

	code, out, errOut = runDLQCmd(t, "list", "--output", "json", "--status", "5xx")
	if code != exitOK {
		t.Fatalf("dlq list --output json: exit %d, stderr %q", code, errOut)
	}
	var e struct {
		DLQTopic  string `json:"dlq_topic"`
		DLQOffset int64  `json:"dlq_offset"`
		Status    string `json:"status"`
		Key       string `json:"key"`
	}
	if err := json.Unmarshal([]byte(out), &e); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("dlq list --output json = %q (%v), want one JSON line", out, err)
	}
	if e.DLQTopic != "orders.g1.dlq" || e.DLQOffset != 1 || e.Status != "503" || e.Key != "k1" {
		t.Fatalf("JSON entry = %+v, want the 503 record at offset 1", e)
	}

	code, out, errOut = runDLQCmd(t, "replay", "--dry-run")
	if code != exitOK || !strings.Contains(out, "would send 2") || !strings.Contains(out, "sent 0,") {
		t.Fatalf("dlq replay --dry-run: exit %d, out %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runDLQCmd(t, "replay", "--offsets", "0:0")
	if code != exitOK || !strings.Contains(out, "sent 1,") {
		t.Fatalf("dlq replay: exit %d, out %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runDLQCmd(t, "replay", "--offsets", "0:0")
	if code != exitOK || !strings.Contains(out, "sent 0,") || !strings.Contains(out, "already replayed 1") {
		t.Fatalf("second dlq replay: exit %d, out %q, stderr %q", code, out, errOut)
	}

	t.Setenv("SIDECAR_DEDUP", "memory")
	if code, _, errOut = runDLQCmd(t, "replay"); code != exitConfig || !strings.Contains(errOut, "--no-replay-marks") {
		t.Fatalf("replay with SIDECAR_DEDUP=memory: exit %d, stderr %q; want 2 naming --no-replay-marks", code, errOut)
	}
	if code, out, errOut = runDLQCmd(t, "replay", "--no-replay-marks", "--dry-run"); code != exitOK || !strings.Contains(out, "would send 2") {
		t.Fatalf("replay --no-replay-marks --dry-run: exit %d, out %q, stderr %q", code, out, errOut)
	}
}
