package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/connect"
	"github.com/kafka-sidecar/kafka-sidecar/dedup"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
)

const (
	source = "orders"
	group  = "billing"
	retry1 = "orders.billing.retry.1"
	dlq    = "orders.billing.dlq"
)

// runDeadline bounds every Run in these tests; a run that needs longer is a hang.
const runDeadline = 20 * time.Second

func ptr(s string) *string { return &s }

// testConfig is a valid configuration for one source topic with one retry tier and no dedup store.
func testConfig(brokers []string) *config.Config {
	return &config.Config{
		KafkaBrokers:     brokers,
		KafkaTopics:      []string{source},
		KafkaGroup:       group,
		KafkaStartOffset: "earliest",
		RetryDelays:      []time.Duration{10 * time.Second},
		ShutdownTimeout:  30 * time.Second,
		Dedup:            config.DedupOff,
		DedupTTL:         168 * time.Hour,
		CreateTopics:     true,
		AppURL:           "http://127.0.0.1:8080/",
	}
}

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// newAdmin builds an admin client the way the doctor command does: from connect.KafkaOpts.
func newAdmin(t *testing.T, cfg *config.Config, extra ...kgo.Opt) *kadm.Client {
	t.Helper()
	return kadm.NewClient(newKgo(t, cfg, extra...))
}

func newKgo(t *testing.T, cfg *config.Config, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts, err := connect.KafkaOpts(cfg)
	if err != nil {
		t.Fatalf("KafkaOpts: %v", err)
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func createTopic(t *testing.T, adm *kadm.Client, name string, partitions int32, rf int16, configs map[string]*string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, rf, configs, name); err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
}

func runDoctor(t *testing.T, deps Deps) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runDeadline)
	defer cancel()
	start := time.Now()
	rep := Run(ctx, deps)
	if elapsed := time.Since(start); elapsed > runDeadline {
		t.Fatalf("Run took %v, longer than its context allowed", elapsed)
	}
	return rep
}

func wantStatus(t *testing.T, rep Report, id string, want Status) Check {
	t.Helper()
	c, ok := rep.Find(id)
	if !ok {
		t.Fatalf("no check %s in the report:\n%s", id, tableOf(rep))
	}
	if c.Status != want {
		t.Fatalf("%s is %s (%s), want %s", id, c.Status, c.Observed, want)
	}
	if c.Status != Pass && c.Fix == "" {
		t.Fatalf("%s is %s without a fix", id, c.Status)
	}
	if c.Why == "" {
		t.Fatalf("%s has no why", id)
	}
	return c
}

func tableOf(rep Report) string {
	var b strings.Builder
	_ = rep.WriteTable(&b)
	return b.String()
}

func TestRunFlagsUnsafeTopic(t *testing.T) {
	tests := []struct {
		name         string
		createTopics bool
		wantMissing  Status
	}{
		{name: "sidecar creates missing topics", createTopics: true, wantMissing: Warn},
		{name: "sidecar may not create topics", createTopics: false, wantMissing: Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kc := newCluster(t, kfake.NumBrokers(1))
			cfg := testConfig(kc.ListenAddrs())
			cfg.CreateTopics = tt.createTopics
			adm := newAdmin(t, cfg)
			createTopic(t, adm, source, 2, 1, map[string]*string{
				"unclean.leader.election.enable": ptr("true"),
				"min.insync.replicas":            ptr("1"),
			})

			rep := runDoctor(t, Deps{Config: cfg, Admin: adm})
			if !rep.Failed() {
				t.Fatalf("Failed() = false for an unsafe topic:\n%s", tableOf(rep))
			}
			wantStatus(t, rep, "kafka.reachable", Pass)
			wantStatus(t, rep, "topic.exists:"+source, Pass)
			if c := wantStatus(t, rep, "topic.replication:"+source, Fail); !strings.Contains(c.Observed, "replication factor 1") {
				t.Errorf("replication observed %q, want the factor named", c.Observed)
			}
			if c := wantStatus(t, rep, "topic.min_insync:"+source, Fail); !strings.Contains(c.Observed, "min.insync.replicas=1 (topic override)") {
				t.Errorf("min_insync observed %q, want the value and its source", c.Observed)
			}
			c := wantStatus(t, rep, "topic.unclean_election:"+source, Fail)
			if !strings.Contains(c.Fix, "kafka-configs.sh --bootstrap-server "+cfg.KafkaBrokers[0]) ||
				!strings.Contains(c.Fix, "--entity-name orders --add-config unclean.leader.election.enable=false") {
				t.Errorf("unclean election fix %q is not the kafka-configs command", c.Fix)
			}
			wantStatus(t, rep, "topic.exists:"+retry1, tt.wantMissing)
			// The create command gives a retry or dead-letter topic the source's 2 partitions, not a placeholder.
			if c := wantStatus(t, rep, "topic.exists:"+dlq, tt.wantMissing); !strings.Contains(c.Fix, "--topic "+dlq+" --partitions 2 ") || strings.Contains(c.Fix, "<") {
				t.Errorf("create command %q, want the source's partition count", c.Fix)
			}
			wantStatus(t, rep, "producer.settings", Pass)
			var table bytes.Buffer
			if err := rep.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(table.String(), "\n") {
				if len(line) > TableWidth {
					t.Errorf("table line of %d columns: %s", len(line), line)
				}
			}
			if _, ok := rep.Find("topic.min_insync:" + dlq); ok {
				t.Error("a missing topic got config checks")
			}
		})
	}
}

func TestRunAllPassOnSafeSetup(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(3))
	srv := redistest.Start(t, redistest.Options{Config: map[string]string{
		"maxmemory-policy": "noeviction",
		"appendonly":       "yes",
	}})
	cfg := testConfig(c.ListenAddrs())
	cfg.Dedup = config.DedupRedis
	cfg.RedisURL = config.Secret(srv.URL())
	cfg.AppHealthURL = "http://127.0.0.1:8080/healthz"
	adm := newAdmin(t, cfg)
	safe := map[string]*string{
		"min.insync.replicas":            ptr("2"),
		"unclean.leader.election.enable": ptr("false"),
		"retention.ms":                   ptr("259200000"), // 3 days: below the 7-day dedup TTL
	}
	createTopic(t, adm, source, 3, 3, safe)
	createTopic(t, adm, retry1, 3, 3, safe)
	createTopic(t, adm, dlq, 3, 3, map[string]*string{"min.insync.replicas": ptr("2"), "retention.ms": ptr("-1")})
	commitOffsets(t, adm, source, 0, 3)

	rc, err := connect.Redis(cfg)
	if err != nil {
		t.Fatalf("connect.Redis: %v", err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	probed := 0
	rep := runDoctor(t, Deps{
		Config:      cfg,
		Admin:       adm,
		Redis:       dedup.NewRedisInspector(rc),
		AppProbe:    func(context.Context) error { probed++; return nil },
		HealthProbe: func(context.Context) error { probed++; return nil },
		Now:         steppingClock(100 * time.Microsecond),
	})
	for _, c := range rep.Checks {
		if c.Status != Pass {
			t.Errorf("%s is %s: %s (fix: %s)", c.ID, c.Status, c.Observed, c.Fix)
		}
	}
	if rep.Failed() {
		t.Fatal("Failed() = true with every check passing")
	}
	if probed != 2 {
		t.Fatalf("the app probes ran %d times, want 2", probed)
	}
	wantIDs := []string{"kafka.reachable", "producer.settings", "dedup.store",
		"redis.reachable", "redis.latency", "redis.persistence", "redis.eviction", "redis.memory", "redis.capacity",
		"app.reachable", "app.health",
		"group.offsets_retained:" + source, "group.offsets_retained:" + retry1, "dlq.retention:" + dlq}
	for _, topic := range []string{source, retry1, dlq} {
		wantIDs = append(wantIDs, "topic.exists:"+topic, "topic.replication:"+topic, "topic.min_insync:"+topic, "topic.unclean_election:"+topic)
	}
	wantIDs = append(wantIDs, "topic.retention:"+source, "topic.retention:"+retry1)
	for _, id := range wantIDs {
		if _, ok := rep.Find(id); !ok {
			t.Errorf("check %s missing", id)
		}
	}
	if len(rep.Checks) != len(wantIDs) {
		t.Errorf("%d checks, want exactly %d:\n%s", len(rep.Checks), len(wantIDs), tableOf(rep))
	}
	if c, _ := rep.Find("group.offsets_retained:" + source); !strings.Contains(c.Observed, "1 partition committed") {
		t.Errorf("group offsets observed %q, want the committed partition compared", c.Observed)
	}

	var b strings.Builder
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatalf("WriteJSON: %v", err)
	}
	var parsed Report
	if err := json.Unmarshal([]byte(b.String()), &parsed); err != nil {
		t.Fatalf("the JSON output does not parse: %v\n%s", err, b.String())
	}
	if len(parsed.Checks) != len(rep.Checks) || parsed.Checks[0] != rep.Checks[0] {
		t.Fatalf("JSON round trip changed the report:\n%s", b.String())
	}
}

// steppingClock returns a clock that advances by step on every reading, making measured latencies exact.
func steppingClock(step time.Duration) func() time.Time {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		now = now.Add(step)
		return now
	}
}

func commitOffsets(t *testing.T, adm *kadm.Client, topic string, partition int32, at int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var os kadm.Offsets
	os.AddOffset(topic, partition, at, -1)
	resp, err := adm.CommitOffsets(ctx, group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("committing %s[%d]@%d: %v", topic, partition, at, err)
	}
}

func TestRunFailsOffsetsBelowLogStart(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1))
	cfg := testConfig(c.ListenAddrs())
	cfg.RetryDelays = nil
	cl := newKgo(t, cfg, kgo.DefaultProduceTopic(source), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	createTopic(t, adm, source, 2, 1, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for range 10 {
		recs = append(recs, &kgo.Record{Partition: 0, Value: []byte("v")})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
	commitOffsets(t, adm, source, 0, 0)
	commitOffsets(t, adm, source, 1, 0)
	var trim kadm.Offsets
	trim.AddOffset(source, 0, 6, -1)
	resp, err := adm.DeleteRecords(ctx, trim)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("deleting records: %v", err)
	}

	rep := runDoctor(t, Deps{Config: cfg, Admin: adm})
	got := wantStatus(t, rep, "group.offsets_retained:"+source, Fail)
	if !strings.Contains(got.Observed, "6 records lost to retention: partition 0 committed 0 < log start 6 (6 records)") {
		t.Fatalf("observed %q, want the partition and the count of lost records", got.Observed)
	}
	if strings.Contains(got.Observed, "partition 1") {
		t.Fatalf("observed %q names partition 1, whose commit is still valid", got.Observed)
	}
	if !rep.Failed() {
		t.Fatal("Failed() = false")
	}
}

func TestRunWarnsWhenNotPermitted(t *testing.T) {
	allow := func(res kmsg.ACLResourceType, name string, op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: res, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	c := newCluster(t, kfake.NumBrokers(1), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-512", "admin", "admin-password"),
		// The sidecar may see the topics but not their configs, and may not read its group.
		kfake.User("SCRAM-SHA-512", "sidecar", "sidecar-password",
			allow(kmsg.ACLResourceTypeTopic, "*", kmsg.ACLOperationDescribe),
			allow(kmsg.ACLResourceTypeCluster, "kafka-cluster", kmsg.ACLOperationDescribe),
		),
	)
	adminCfg := testConfig(c.ListenAddrs())
	adminCfg.KafkaSASLMechanism, adminCfg.KafkaSASLUsername, adminCfg.KafkaSASLPassword = "SCRAM-SHA-512", "admin", "admin-password"
	createTopic(t, newAdmin(t, adminCfg), source, 1, 1, nil)

	cfg := testConfig(c.ListenAddrs())
	cfg.RetryDelays = nil
	cfg.KafkaSASLMechanism, cfg.KafkaSASLUsername, cfg.KafkaSASLPassword = "SCRAM-SHA-512", "sidecar", "sidecar-password"
	rep := runDoctor(t, Deps{Config: cfg, Admin: newAdmin(t, cfg)})

	for _, id := range []string{"topic.min_insync:" + source, "topic.unclean_election:" + source, "topic.retention:" + source, "group.offsets_retained:" + source} {
		c := wantStatus(t, rep, id, Warn)
		if !strings.Contains(c.Observed, "not permitted to describe") {
			t.Errorf("%s observed %q, want \"not permitted to describe\"", id, c.Observed)
		}
		if !strings.Contains(c.Fix, "kafka-acls.sh") || !strings.Contains(c.Fix, "User:sidecar") {
			t.Errorf("%s fix %q, want the kafka-acls command for User:sidecar", id, c.Fix)
		}
	}
	for _, ch := range rep.Checks {
		if strings.Contains(ch.Observed+ch.Why+ch.Fix, "sidecar-password") {
			t.Fatalf("%s holds the SASL password", ch.ID)
		}
	}
}

func TestRunKafkaUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	cfg := testConfig([]string{addr})
	adm := newAdmin(t, cfg, kgo.RetryTimeout(2*time.Second))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	rep := Run(ctx, Deps{Config: cfg, Admin: adm})
	if elapsed := time.Since(start); elapsed > 8*time.Second {
		t.Fatalf("Run took %v with an unreachable cluster, want it bounded by its context (5s)", elapsed)
	}
	wantStatus(t, rep, "kafka.reachable", Fail)
	if !rep.Failed() {
		t.Fatal("Failed() = false")
	}
	if _, ok := rep.Find("topic.exists:" + source); ok {
		t.Fatal("topic checks ran without a cluster")
	}
}

func TestRunWithoutAdminOrConfig(t *testing.T) {
	rep := Run(context.Background(), Deps{})
	wantStatus(t, rep, "config", Fail)
	rep = Run(context.Background(), Deps{Config: testConfig([]string{"127.0.0.1:1"})})
	wantStatus(t, rep, "kafka.reachable", Fail)
	wantStatus(t, rep, "dedup.store", Warn)
}
