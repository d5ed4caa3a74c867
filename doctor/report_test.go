package doctor

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/kafka-sidecar/kafka-sidecar/config"
)

func sampleReport() Report {
	return Report{Checks: []Check{
		{ID: "kafka.reachable", Status: Pass, Observed: "3 brokers answered", Why: "the cluster"},
		{ID: "topic.min_insync:orders", Status: Fail, Observed: "min.insync.replicas=1 (Kafka default)",
			Why: "an acknowledged record lives on one broker",
			Fix: "kafka-configs.sh --bootstrap-server k:9092 --alter --entity-type topics --entity-name orders --add-config min.insync.replicas=2"},
		{ID: "redis.persistence", Status: Warn, Observed: "appendonly=no\tand no save", Why: "marks must survive a restart", Fix: "enable AOF"},
	}}
}

func ExampleReport_WriteTable() {
	_ = sampleReport().WriteTable(os.Stdout)
	// Output:
	// STATUS  CHECK                    OBSERVED
	// PASS    kafka.reachable          3 brokers answered
	// FAIL    topic.min_insync:orders  min.insync.replicas=1 (Kafka default)
	//         why: an acknowledged record lives on one broker
	//         fix: kafka-configs.sh --bootstrap-server k:9092 --alter --entity-type topics --entity-name
	//              orders --add-config min.insync.replicas=2
	// WARN    redis.persistence        appendonly=no and no save
	//         why: marks must survive a restart
	//         fix: enable AOF
	//
	// 3 checks: 1 PASS, 1 WARN, 1 FAIL
}

// TestTableFitsWidth: however long the IDs, observations and fixes, no line of the table is wider than
// TableWidth, and no word of the report is lost to the wrapping.
func TestTableFitsWidth(t *testing.T) {
	long := Report{Checks: []Check{
		{ID: "topic.min_insync:orders.json-logs-consumer-group.retry.3", Status: Fail,
			Observed: "min.insync.replicas=1 (topic override), replication factor 1 on 12 partitions of which 3 are under-replicated now",
			Why:      "with 2 replicas, either min.insync.replicas=2 stops writes while one broker is down, or min.insync.replicas=1 lets an acknowledged record live on one broker",
			Fix:      "raise the replication factor to 3 first (see topic.replication:orders), then kafka-configs.sh --bootstrap-server kafka-0.kafka.orders.svc.cluster.local:9092,kafka-1.kafka.orders.svc.cluster.local:9092 --alter --entity-type topics --entity-name orders --add-config min.insync.replicas=2"},
		{ID: "redis.url", Status: Warn, Observed: "redis-sentinel://s1.example:26379,s2.example:26379,s3.example:26379/mymaster-with-a-name-that-is-longer-than-a-line-of-the-table-can-hold-without-cutting-it-somewhere"},
		{ID: "kafka.reachable", Status: Pass, Observed: "3 brokers answered"},
	}}
	var b bytes.Buffer
	if err := long.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(b.String(), "\n") {
		if len(line) > TableWidth {
			t.Errorf("line %d is %d columns wide, over %d:\n%s", i+1, len(line), TableWidth, line)
		}
	}
	joined := strings.Join(strings.Fields(b.String()), "")
	for _, c := range long.Checks {
		for _, text := range []string{c.ID, c.Observed, c.Why, c.Fix} {
			if !strings.Contains(joined, strings.Join(strings.Fields(text), "")) {
				t.Errorf("the table lost text of %s: %q", c.ID, text)
			}
		}
	}
	t.Logf("\n%s", b.String())
}

func TestReportJSON(t *testing.T) {
	tests := []struct {
		name string
		rep  Report
		want int
	}{
		{name: "sample", rep: sampleReport(), want: 3},
		{name: "empty report still has an array", rep: Report{}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.rep.WriteJSON(&b); err != nil {
				t.Fatalf("WriteJSON: %v", err)
			}
			var doc map[string][]map[string]string
			if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
				t.Fatalf("output does not parse: %v\n%s", err, b.String())
			}
			checks, ok := doc["checks"]
			if !ok || checks == nil || len(checks) != tt.want {
				t.Fatalf("checks %v, want an array of %d: %s", checks, tt.want, b.String())
			}
			for _, c := range checks {
				for _, key := range []string{"id", "status", "observed", "why", "fix"} {
					if _, ok := c[key]; !ok {
						t.Fatalf("check %v lacks %q", c, key)
					}
				}
			}
			if tt.want > 0 && checks[1]["status"] != "FAIL" {
				t.Fatalf("status %q, want FAIL", checks[1]["status"])
			}
		})
	}
}

func TestReportFailed(t *testing.T) {
	tests := []struct {
		name     string
		statuses []Status
		want     bool
	}{
		{name: "empty", want: false},
		{name: "all pass", statuses: []Status{Pass, Pass}, want: false},
		{name: "warnings only", statuses: []Status{Pass, Warn}, want: false},
		{name: "one failure", statuses: []Status{Warn, Fail, Pass}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Report
			for _, s := range tt.statuses {
				r.Checks = append(r.Checks, Check{ID: string(s), Status: s})
			}
			if got := r.Failed(); got != tt.want {
				t.Fatalf("Failed() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRunScrubsSecrets(t *testing.T) {
	tests := []struct{ name, redisURL string }{
		{name: "single server", redisURL: "redis://:redis-secret-456@127.0.0.1:1/0"},
		{name: "cluster list net/url rejects", redisURL: "redis-cluster://u:redis-secret-456@n1:7000,n2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig([]string{"127.0.0.1:1"})
			cfg.KafkaSASLPassword = "kafka-secret-123"
			cfg.RedisURL = config.Secret(tt.redisURL)
			r := &run{cfg: cfg}
			r.add(Check{ID: "x", Status: Fail, Observed: "dial with kafka-secret-123 failed", Why: "redis-secret-456", Fix: "redis://:redis-secret-456@h"})
			var b strings.Builder
			if err := r.report().WriteJSON(&b); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(b.String(), "secret-123") || strings.Contains(b.String(), "secret-456") {
				t.Fatalf("a secret survived: %s", b.String())
			}
		})
	}
}
