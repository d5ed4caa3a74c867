package schematest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPythonRecordsReachTheAppAsTheirJSON: records that Python confluent-kafka's serializers wrote against
// the real registry (Avro with every logical type, named types and unions; Protobuf with a nested, an imported
// and well-known types; JSON Schema) reach the app as the JSON that the same library's deserializers give,
// field by field, in both delivery modes, with the schema headers and the decoded Avro key.
func TestPythonRecordsReachTheAppAsTheirJSON(t *testing.T) {
	registry := needRegistry(t)
	fixtures := serialize(t, python(t), registry)
	formats := map[string]int{}
	for _, f := range fixtures {
		formats[f.Format]++
	}
	if formats["avro"] == 0 || formats["protobuf"] == 0 || formats["json"] == 0 {
		t.Fatalf("serialize.py wrote %v, want records of all three formats", formats)
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "avro-orders", "proto-orders", "json-orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	var recs []*kgo.Record
	of := map[*kgo.Record]fixture{}
	for _, f := range fixtures {
		r := &kgo.Record{Topic: f.Topic, Key: f.Key, Value: f.Value}
		recs = append(recs, r)
		of[r] = f
	}
	// Results come back in the order they complete: each is matched to its fixture by the record itself.
	byPosition := map[string]fixture{}
	for _, r := range produce(t, cluster.ListenAddrs(), recs...) {
		byPosition[fmt.Sprintf("%s/%d", r.Topic, r.Offset)] = of[r]
	}

	for _, mode := range []string{"single", "batch"} {
		t.Run(mode, func(t *testing.T) {
			a := &app{}
			startSidecar(t, []string{
				"SIDECAR_KAFKA_BROKERS=" + strings.Join(cluster.ListenAddrs(), ","),
				"SIDECAR_KAFKA_TOPICS=avro-orders,proto-orders,json-orders", "SIDECAR_KAFKA_GROUP=decode-" + mode,
				"SIDECAR_DELIVERY=" + mode, "SIDECAR_DEDUP=memory", "SIDECAR_RETRY_DELAYS=",
				"SIDECAR_APP_URL=" + serveApp(t, a), "SIDECAR_ADMIN_ADDR=127.0.0.1:0", "SIDECAR_SHUTDOWN_TIMEOUT=2s",
				"SIDECAR_DECODE=json", "SIDECAR_DECODE_KEYS=true", "SIDECAR_SCHEMA_REGISTRY_URL=" + registry,
			})
			waitFor(t, 60*time.Second, fmt.Sprintf("%d records at the app", len(fixtures)), func() bool {
				return len(a.received()) >= len(fixtures)
			})
			got := a.received()
			if len(got) != len(fixtures) {
				t.Fatalf("the app received %d records, want %d", len(got), len(fixtures))
			}
			for _, d := range got {
				pos := fmt.Sprintf("%s/%d", d.topic, d.offset)
				f, ok := byPosition[pos]
				if !ok {
					t.Errorf("the app received %s, which was never produced", pos)
					continue
				}
				compareFields(t, pos+" value", d.value, f.Expected)
				if f.Key != nil {
					if !d.hasKey {
						t.Errorf("%s: no key", pos)
					} else {
						compareFields(t, pos+" key", []byte(d.key), f.ExpectedKey)
					}
				}
				if mode == "single" {
					checkHeaders(t, pos, d, f)
				}
			}
		})
	}
}

// checkHeaders checks what a single-mode request says of the schema.
func checkHeaders(t *testing.T, pos string, d delivered, f fixture) {
	t.Helper()
	id := strconv.Itoa(int(binary.BigEndian.Uint32(f.Value[1:5])))
	for name, want := range map[string]string{
		"Content-Type":         "application/json",
		"Kafka-Schema-Id":      id,
		"Kafka-Schema-Subject": f.Topic + "-value",
	} {
		if got := d.headers.Get(name); got != want {
			t.Errorf("%s: %s = %q, want %q", pos, name, got, want)
		}
	}
	if f.Key != nil {
		keyID := strconv.Itoa(int(binary.BigEndian.Uint32(f.Key[1:5])))
		if got := d.headers.Get("Kafka-Key-Schema-Id"); got != keyID {
			t.Errorf("%s: Kafka-Key-Schema-Id = %q, want %q", pos, got, keyID)
		}
		if got := d.headers.Get("Kafka-Key-Schema-Subject"); got != f.Topic+"-key" {
			t.Errorf("%s: Kafka-Key-Schema-Subject = %q, want %q", pos, got, f.Topic+"-key")
		}
	}
}

// compareFields compares got with want as JSON, field by field for objects, naming every field that differs.
func compareFields(t *testing.T, what string, got []byte, want json.RawMessage) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("%s is not JSON: %v: %s", what, err, got)
		return
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: expected value is not JSON: %v", what, err)
	}
	gm, gok := g.(map[string]any)
	wm, wok := w.(map[string]any)
	if !gok || !wok {
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: got %s, want %s", what, got, want)
		}
		return
	}
	names := map[string]bool{}
	for k := range gm {
		names[k] = true
	}
	for k := range wm {
		names[k] = true
	}
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		gv, inGot := gm[k]
		wv, inWant := wm[k]
		switch {
		case !inGot:
			t.Errorf("%s: field %s missing, want %s", what, k, show(wv))
		case !inWant:
			t.Errorf("%s: field %s = %s, which the deserializer does not give", what, k, show(gv))
		case !reflect.DeepEqual(gv, wv):
			t.Errorf("%s: field %s = %s, want %s", what, k, show(gv), show(wv))
		}
	}
}

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
