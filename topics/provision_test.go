package topics

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const day = 24 * time.Hour

// newCluster starts a three-broker fake cluster on 127.0.0.1 and returns it with an admin client.
func newCluster(t *testing.T) (*kfake.Cluster, *kadm.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatalf("starting fake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c, newAdmin(t, c)
}

// newAdmin returns an admin client of its own. The client caches metadata answers for a short while, so
// a check right after a create uses a fresh client to see the cluster as it is, as a restarted sidecar
// would.
func newAdmin(t *testing.T, c *kfake.Cluster) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.MetadataMinAge(10*time.Millisecond))
	if err != nil {
		t.Fatalf("creating client: %v", err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustCreate(t *testing.T, adm *kadm.Client, name string, partitions int32, rf int16, configs map[string]*string) {
	t.Helper()
	if _, err := adm.CreateTopic(testContext(t), partitions, rf, configs, name); err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
}

// describe reads a topic's partition count, replication factor and the configs Provision sets.
func describe(t *testing.T, c *kfake.Cluster, name string) (int, int16, map[string]string) {
	t.Helper()
	ctx := testContext(t)
	adm := newAdmin(t, c)
	details, err := adm.ListTopics(ctx, name)
	if err != nil {
		t.Fatalf("listing %s: %v", name, err)
	}
	d := details[name]
	if d.Err != nil {
		t.Fatalf("describing %s: %v", name, d.Err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, name)
	if err != nil {
		t.Fatalf("describing configs of %s: %v", name, err)
	}
	rc, err := rcs.On(name, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("configs of %s: %v %v", name, err, rc.Err)
	}
	configs := make(map[string]string)
	for _, c := range rc.Configs {
		switch c.Key {
		case "min.insync.replicas", "unclean.leader.election.enable", "cleanup.policy", "retention.ms":
			configs[c.Key] = c.MaybeValue()
		}
	}
	return len(d.Partitions), replicationFactor(d), configs
}

func exists(t *testing.T, c *kfake.Cluster, name string) bool {
	t.Helper()
	details, err := newAdmin(t, c).ListTopics(testContext(t), name)
	if err != nil {
		t.Fatalf("listing %s: %v", name, err)
	}
	_, ok, err := lookup(details, name)
	if err != nil {
		t.Fatalf("looking up %s: %v", name, err)
	}
	return ok
}

func wantConfigs(minISR, retention string) map[string]string {
	return map[string]string{
		"min.insync.replicas":            minISR,
		"unclean.leader.election.enable": "false",
		"cleanup.policy":                 "delete",
		"retention.ms":                   retention,
	}
}

func TestProvisionCreatesMissingTopics(t *testing.T) {
	c, adm := newCluster(t)
	mustCreate(t, adm, "orders", 6, 3, nil)
	plans := PlanFor([]string{"orders"}, "billing", 3, "")
	delays := []time.Duration{10 * time.Second, time.Minute, 10 * day}

	res, err := Provision(testContext(t), adm, plans, true, WithRetryDelays(delays))
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings %q, want none for replication factor 3", res.Warnings)
	}
	want := []struct {
		topic     string
		role      Role
		retention string
	}{
		{"orders.billing.retry.1", RoleRetry, "604800000"}, // 7 days: longer than twice 10s
		{"orders.billing.retry.2", RoleRetry, "604800000"},
		{"orders.billing.retry.3", RoleRetry, "1728000000"},  // twice the 10-day delay
		{"orders.billing.dlq", RoleDeadLetter, "2419200000"}, // 28 days
	}
	if len(res.Created) != len(want) {
		t.Fatalf("created %+v, want %d topics", res.Created, len(want))
	}
	for i, w := range want {
		t.Run(w.topic, func(t *testing.T) {
			got := res.Created[i]
			if got.Topic != w.topic || got.Role != w.role || got.Partitions != 6 || got.ReplicationFactor != 3 {
				t.Errorf("reported %+v, want %s (%s) with 6 partitions, replication factor 3", got, w.topic, w.role)
			}
			parts, rf, configs := describe(t, c, w.topic)
			if parts != 6 || rf != 3 {
				t.Errorf("cluster has %d partitions, replication factor %d; want 6, 3", parts, rf)
			}
			if wc := wantConfigs("2", w.retention); !mapsEqual(configs, wc) || !mapsEqual(got.Configs, wc) {
				t.Errorf("configs on cluster %v, reported %v, want %v", configs, got.Configs, wc)
			}
		})
	}
}

func TestProvisionMinInsyncReplicas(t *testing.T) {
	tests := []struct {
		name         string
		rf           int16
		sourceMinISR string // "" leaves the broker default (1)
		wantMinISR   string
		wantWarning  string // substring of the only warning, "" for none
	}{
		{"replication factor 3 gets 2", 3, "", "2", ""},
		{"stricter source is followed", 3, "3", "3", ""},
		{"laxer source is raised to 2", 3, "1", "2", ""},
		{"replication factor 2 keeps 2 and warns", 2, "", "2", "replication factor 2"},
		{"replication factor 1 can only have 1 and warns", 1, "", "1", "replication factor 1"},
		{"never above the replication factor", 2, "3", "2", "replication factor 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, adm := newCluster(t)
			var configs map[string]*string
			if tt.sourceMinISR != "" {
				configs = map[string]*string{"min.insync.replicas": kadm.StringPtr(tt.sourceMinISR)}
			}
			mustCreate(t, adm, "src", 2, tt.rf, configs)
			res, err := Provision(testContext(t), adm, []Plan{{Source: "src", DeadLetter: "src.g.dlq"}}, true)
			if err != nil {
				t.Fatalf("Provision: %v", err)
			}
			_, rf, got := describe(t, c, "src.g.dlq")
			if rf != tt.rf || got["min.insync.replicas"] != tt.wantMinISR {
				t.Errorf("replication factor %d, min.insync.replicas %q; want %d, %q", rf, got["min.insync.replicas"], tt.rf, tt.wantMinISR)
			}
			switch {
			case tt.wantWarning == "" && len(res.Warnings) != 0:
				t.Errorf("warnings %q, want none", res.Warnings)
			case tt.wantWarning != "" && (len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], tt.wantWarning) || !strings.Contains(res.Warnings[0], "src.g.dlq")):
				t.Errorf("warnings %q, want one naming src.g.dlq and %q", res.Warnings, tt.wantWarning)
			}
		})
	}
}

func TestProvisionIsIdempotent(t *testing.T) {
	c, adm := newCluster(t)
	mustCreate(t, adm, "orders", 3, 3, nil)
	plans := PlanFor([]string{"orders"}, "billing", 2, "")
	if _, err := Provision(testContext(t), adm, plans, true); err != nil {
		t.Fatalf("first Provision: %v", err)
	}

	// The second run must find everything in place and send no create request at all.
	var creates atomic.Int32 // written on the cluster's goroutine
	c.ControlKey(int16(kmsg.CreateTopics), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		creates.Add(1)
		return nil, nil, false
	})
	for _, create := range []bool{true, false} {
		res, err := Provision(testContext(t), newAdmin(t, c), plans, create)
		if err != nil {
			t.Fatalf("Provision(create=%v) again: %v", create, err)
		}
		if len(res.Created) != 0 || len(res.Warnings) != 0 {
			t.Fatalf("Provision(create=%v) again reported %+v, want nothing", create, res)
		}
	}
	if n := creates.Load(); n != 0 {
		t.Fatalf("%d create requests on a provisioned cluster, want 0", n)
	}
}

func TestProvisionMissingSource(t *testing.T) {
	c, adm := newCluster(t)
	mustCreate(t, adm, "orders", 3, 3, nil)
	plans := PlanFor([]string{"orders", "payments", "refunds"}, "billing", 1, "")

	res, err := Provision(testContext(t), adm, plans, true)
	var missing []string
	for _, e := range unjoin(err) {
		var me *MissingTopicError
		if !errors.As(e, &me) || me.Role != RoleSource || me.CreateDisabled {
			t.Fatalf("error %v is not a missing source topic", e)
		}
		if !strings.Contains(e.Error(), me.Topic) {
			t.Errorf("error %q does not name %q", e, me.Topic)
		}
		missing = append(missing, me.Topic)
	}
	if !slices.Equal(missing, []string{"payments", "refunds"}) {
		t.Fatalf("missing sources %v (error %v), want [payments refunds]", missing, err)
	}
	if len(res.Created) != 0 || exists(t, c, "orders.billing.retry.1") {
		t.Fatalf("created topics although a source is missing: %+v", res.Created)
	}
}

func TestProvisionCreateDisabled(t *testing.T) {
	c, adm := newCluster(t)
	mustCreate(t, adm, "orders", 3, 3, nil)
	mustCreate(t, adm, "orders.billing.retry.1", 3, 3, nil)
	plans := PlanFor([]string{"orders"}, "billing", 2, "")

	_, err := Provision(testContext(t), adm, plans, false)
	var missing []string
	for _, e := range unjoin(err) {
		var me *MissingTopicError
		if !errors.As(e, &me) || !me.CreateDisabled {
			t.Fatalf("error %v is not a topic missing with creation off", e)
		}
		if msg := e.Error(); !strings.Contains(msg, me.Topic) || !strings.Contains(msg, "SIDECAR_CREATE_TOPICS=false") {
			t.Errorf("error %q does not name %q and SIDECAR_CREATE_TOPICS=false", msg, me.Topic)
		}
		missing = append(missing, me.Topic)
	}
	if !slices.Equal(missing, []string{"orders.billing.retry.2", "orders.billing.dlq"}) {
		t.Fatalf("missing %v (error %v), want [orders.billing.retry.2 orders.billing.dlq]", missing, err)
	}
	if exists(t, c, "orders.billing.retry.2") || exists(t, c, "orders.billing.dlq") {
		t.Fatal("a topic was created with create=false")
	}
}

func TestProvisionConcurrentCreatorIsSuccess(t *testing.T) {
	c, adm := newCluster(t)
	mustCreate(t, adm, "orders", 3, 3, nil)
	// Answer every create as a broker does when another sidecar created the topic a moment earlier.
	c.ControlKey(int16(kmsg.CreateTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		creq := req.(*kmsg.CreateTopicsRequest)
		resp := creq.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, rt := range creq.Topics {
			st := kmsg.NewCreateTopicsResponseTopic()
			st.Topic = rt.Topic
			st.ErrorCode = kerr.TopicAlreadyExists.Code
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	res, err := Provision(testContext(t), adm, PlanFor([]string{"orders"}, "billing", 1, ""), true)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if len(res.Created) != 0 {
		t.Fatalf("reported %+v as created by this call, want none", res.Created)
	}
}

func TestProvisionCreateFailureNamesTopic(t *testing.T) {
	c, adm := newCluster(t)
	mustCreate(t, adm, "orders", 3, 3, nil)
	c.ControlKey(int16(kmsg.CreateTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		creq := req.(*kmsg.CreateTopicsRequest)
		resp := creq.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, rt := range creq.Topics {
			st := kmsg.NewCreateTopicsResponseTopic()
			st.Topic = rt.Topic
			st.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	_, err := Provision(testContext(t), adm, []Plan{{Source: "orders", DeadLetter: "orders.billing.dlq"}}, true)
	if !errors.Is(err, kerr.TopicAuthorizationFailed) || !strings.Contains(err.Error(), `"orders.billing.dlq"`) {
		t.Fatalf("error %v, want TOPIC_AUTHORIZATION_FAILED naming orders.billing.dlq", err)
	}
}

func TestProvisionSharedDeadLetterTopic(t *testing.T) {
	c, adm := newCluster(t)
	mustCreate(t, adm, "small", 3, 3, nil)
	mustCreate(t, adm, "large", 8, 3, nil)
	plans := PlanFor([]string{"small", "large"}, "billing", 0, "all.dlq")

	res, err := Provision(testContext(t), adm, plans, true)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if len(res.Created) != 1 || res.Created[0].Topic != "all.dlq" {
		t.Fatalf("created %+v, want only all.dlq", res.Created)
	}
	if parts, _, _ := describe(t, c, "all.dlq"); parts != 8 {
		t.Fatalf("all.dlq has %d partitions, want 8 (the larger source)", parts)
	}
}

func TestProvisionWarnsAboutFewerPartitions(t *testing.T) {
	_, adm := newCluster(t)
	mustCreate(t, adm, "orders", 6, 3, nil)
	mustCreate(t, adm, "orders.billing.dlq", 2, 3, nil)
	res, err := Provision(testContext(t), adm, []Plan{{Source: "orders", DeadLetter: "orders.billing.dlq"}}, true)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], `"orders.billing.dlq" has 2 partitions`) {
		t.Fatalf("warnings %q, want one about orders.billing.dlq having 2 partitions", res.Warnings)
	}
}

func TestProvisionNoPlans(t *testing.T) {
	res, err := Provision(testContext(t), nil, nil, true)
	if err != nil || len(res.Created) != 0 {
		t.Fatalf("Provision(no plans) = %+v, %v; want nothing", res, err)
	}
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		return joined.Unwrap()
	}
	return []error{err}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestProvisionTargetDescribeErrors(t *testing.T) {
	tests := []struct {
		name    string
		err     *kerr.Error
		wantErr bool
	}{
		// The topic exists, its leader is being elected: nothing to create, nothing to fail.
		{"retriable error means the topic exists", kerr.LeaderNotAvailable, false},
		{"authorization error is reported", kerr.TopicAuthorizationFailed, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, adm := newCluster(t)
			mustCreate(t, adm, "orders", 3, 3, nil)
			mustCreate(t, adm, "orders.billing.dlq", 3, 3, nil)
			fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata}, Topic: "orders.billing.dlq", Err: tt.err, Count: -1})
			var creates atomic.Int32
			c.ControlKey(int16(kmsg.CreateTopics), func(kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				creates.Add(1)
				return nil, nil, false
			})

			res, err := Provision(testContext(t), newAdmin(t, c), []Plan{{Source: "orders", DeadLetter: "orders.billing.dlq"}}, true)
			if n := creates.Load(); n != 0 || len(res.Created) != 0 {
				t.Fatalf("%d create requests, created %+v: want none", n, res.Created)
			}
			if fault.Hits() == 0 {
				t.Fatal("the metadata fault never fired")
			}
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Provision: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), "orders.billing.dlq") {
				t.Fatalf("error %v, want %v naming orders.billing.dlq", err, tt.err)
			}
		})
	}
}

func TestProvisionUnreadableSourceConfigs(t *testing.T) {
	// Reading the source's min.insync.replicas needs DescribeConfigs, which the sidecar's principal may
	// lack: that is a warning, and the topic gets the safe default of 2.
	c, adm := newCluster(t)
	mustCreate(t, adm, "orders", 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("3")})
	fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.DescribeConfigs}, Err: kerr.TopicAuthorizationFailed, Count: 1})
	res, err := Provision(testContext(t), adm, []Plan{{Source: "orders", DeadLetter: "orders.billing.dlq"}}, true)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if fault.Hits() != 1 {
		t.Fatalf("the describe-configs fault fired %d times, want 1", fault.Hits())
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], `"orders"`) || !strings.Contains(res.Warnings[0], "min.insync.replicas=2") {
		t.Fatalf("warnings %q, want one naming orders and the default min.insync.replicas=2", res.Warnings)
	}
	if _, _, configs := describe(t, c, "orders.billing.dlq"); configs["min.insync.replicas"] != "2" {
		t.Fatalf("min.insync.replicas = %q, want 2", configs["min.insync.replicas"])
	}
}
