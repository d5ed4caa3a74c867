package schematest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/kafka-sidecar/kafka-sidecar/envelope"
)

// TestRegistryOutageAndUnknownSchema: the real registry becomes unreachable mid-run (connections refused)
// while records of a schema the sidecar has not fetched yet arrive: delivery pauses, readiness names the
// registry, nothing is dead-lettered; once it is back every record arrives decoded. A schema ID the registry
// answers 404 for is dead-lettered with its original bytes and a reason naming the ID.
func TestRegistryOutageAndUnknownSchema(t *testing.T) {
	registry := needRegistry(t)
	u, err := url.Parse(registry)
	if err != nil {
		t.Fatal(err)
	}
	px := newProxy(t, u.Host)
	through := "http://" + px.addr + u.Path

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := sr.NewClient(sr.URLs(registry))
	if err != nil {
		t.Fatal(err)
	}
	topic := "pings-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	s, err := cl.CreateSchema(ctx, topic+"-value", sr.Schema{Type: sr.TypeAvro,
		Schema: `{"type":"record","name":"Ping","namespace":"outage","fields":[{"name":"n","type":"long"}]}`})
	if err != nil {
		t.Fatal(err)
	}
	wire := func(id int, payload ...byte) []byte {
		return append([]byte{0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}, payload...)
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	a := &app{}
	sc := startSidecar(t, []string{
		"SIDECAR_KAFKA_BROKERS=" + strings.Join(cluster.ListenAddrs(), ","),
		"SIDECAR_KAFKA_TOPICS=" + topic, "SIDECAR_KAFKA_GROUP=outage", "SIDECAR_ORDERING=partition",
		"SIDECAR_DEDUP=memory", "SIDECAR_RETRY_DELAYS=", "SIDECAR_APP_BACKOFF_MAX=300ms",
		"SIDECAR_APP_URL=" + serveApp(t, a), "SIDECAR_ADMIN_ADDR=127.0.0.1:0", "SIDECAR_SHUTDOWN_TIMEOUT=2s",
		"SIDECAR_DECODE=json", "SIDECAR_SCHEMA_REGISTRY_URL=" + through,
	})
	admin := sc.AdminAddr(ctx)

	px.Down()
	var recs []*kgo.Record
	for n := range 5 {
		recs = append(recs, &kgo.Record{Topic: topic, Value: wire(s.ID, byte(2*n))})
	}
	produce(t, cluster.ListenAddrs(), recs...)
	var reasons []string
	waitFor(t, 30*time.Second, "/readyz naming the schema registry", func() bool {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct {
			Reasons []string `json:"reasons"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		reasons = body.Reasons
		return resp.StatusCode == http.StatusServiceUnavailable &&
			strings.Contains(strings.Join(body.Reasons, ";"), "schema registry unavailable")
	})
	t.Logf("readiness while the registry is down: %q", reasons)
	if n := len(a.received()); n != 0 {
		t.Fatalf("%d records delivered while the registry was down", n)
	}

	if err := px.Up(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the 5 records once the registry is back", func() bool { return len(a.received()) >= 5 })
	for _, d := range a.received() {
		var v struct{ N *int }
		if err := json.Unmarshal(d.value, &v); err != nil || v.N == nil || *v.N != int(d.offset) {
			t.Errorf("offset %d: got %s, want {\"n\":%d}", d.offset, d.value, d.offset)
		}
	}

	unknown := wire(987654, 0x02)
	produce(t, cluster.ListenAddrs(), &kgo.Record{Topic: topic, Value: unknown})
	dead := readTopic(t, cluster.ListenAddrs(), topic+".outage.dlq", 1)
	if !bytes.Equal(dead[0].Value, unknown) {
		t.Errorf("dead letter value %x, want the original bytes %x", dead[0].Value, unknown)
	}
	var reason string
	for _, h := range dead[0].Headers {
		if h.Key == envelope.HeaderError {
			reason = string(h.Value)
		}
	}
	if !strings.Contains(reason, "schema id 987654") {
		t.Errorf("dead letter reason %q does not name schema id 987654", reason)
	}
	if n := len(a.received()); n != 5 {
		t.Errorf("the app received %d records, want the 5 decodable ones", n)
	}
}
