package doctor

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/kafka-sidecar/kafka-sidecar/config"
)

// registryChecksOf runs the audit and keeps the schema registry checks.
func registryChecksOf(t *testing.T, cfg *config.Config, reg SubjectLister) map[string]Check {
	t.Helper()
	out := map[string]Check{}
	for _, c := range Run(context.Background(), Deps{Config: cfg, Registry: reg}).Checks {
		if strings.HasPrefix(c.ID, "schema_registry.") {
			out[c.ID] = c
		}
	}
	return out
}

func TestRegistryChecks(t *testing.T) {
	fake := srfake.New()
	defer fake.Close()
	fake.SeedSchema("orders-value", 1, 1, sr.Schema{Schema: `"string"`})
	fake.SeedSchema("shop.Payment", 1, 2, sr.Schema{Schema: `"string"`})
	cl, err := sr.NewClient(sr.URLs(fake.URL()))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{KafkaTopics: []string{"orders", "payments"}, Decode: config.DecodeJSON, SchemaRegistryURL: fake.URL()}

	got := registryChecksOf(t, cfg, cl)
	want := map[string]Status{
		"schema_registry.reachable":        Pass,
		"schema_registry.subject:orders":   Pass,
		"schema_registry.subject:payments": Warn,
	}
	if len(got) != len(want) {
		t.Fatalf("got checks %v, want %v", got, want)
	}
	for id, status := range want {
		if got[id].Status != status {
			t.Errorf("%s: %s (%s), want %s", id, got[id].Status, got[id].Observed, status)
		}
	}
	if c := got["schema_registry.subject:payments"]; c.Fix == "" || !strings.Contains(c.Observed, "payments-value") {
		t.Errorf("missing subject check: %+v", c)
	}

	// Unreachable: a FAIL with a fix, and no subject checks that could not be made.
	down, _ := sr.NewClient(sr.URLs("http://127.0.0.1:1"))
	got = registryChecksOf(t, cfg, down)
	if c := got["schema_registry.reachable"]; c.Status != Fail || c.Fix == "" || len(got) != 1 {
		t.Errorf("unreachable registry: %v", got)
	}

	// Decoding off: no registry checks at all.
	off := *cfg
	off.Decode = config.DecodeOff
	if got := registryChecksOf(t, &off, cl); len(got) != 0 {
		t.Errorf("decoding off: got %v, want no registry checks", got)
	}
}
