package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/kafka-sidecar/kafka-sidecar/config"
)

// SubjectLister lists the subjects a schema registry holds; *sr.Client is one.
type SubjectLister interface {
	Subjects(ctx context.Context) ([]string, error)
}

// registryChecks reports, when decoding is on, whether the schema registry answers and whether it holds the
// value subject of every source topic under the default naming (<topic>-value).
func (r *run) registryChecks(ctx context.Context) {
	if r.cfg.Decode != config.DecodeJSON {
		return
	}
	c := Check{ID: "schema_registry.reachable",
		Why: "with SIDECAR_DECODE=json every record in wire format needs its schema from the registry; while it does not answer, delivery of records with schemas not fetched yet pauses"}
	if r.deps.Registry == nil {
		c.Status, c.Observed = Fail, "no registry client"
		c.Fix = "set SIDECAR_SCHEMA_REGISTRY_URL"
		r.add(c)
		return
	}
	sctx, cancel := step(ctx)
	subjects, err := r.deps.Registry.Subjects(sctx)
	cancel()
	if err != nil {
		c.Status, c.Observed = Fail, fmt.Sprintf("%s: %s", r.cfg.SchemaRegistryURL, describeErr(err))
		c.Fix = "start the registry, or point SIDECAR_SCHEMA_REGISTRY_URL at its Confluent-compatible API (Apicurio: /apis/ccompat/v7) and check SIDECAR_SCHEMA_REGISTRY_USERNAME and _PASSWORD_FILE"
		r.add(c)
		return
	}
	c.Status, c.Observed = Pass, fmt.Sprintf("%s answers, %d subjects", r.cfg.SchemaRegistryURL, len(subjects))
	r.add(c)

	have := make(map[string]bool, len(subjects))
	for _, s := range subjects {
		have[s] = true
	}
	for _, topic := range r.cfg.KafkaTopics {
		subject := topic + "-value"
		c := Check{ID: "schema_registry.subject:" + topic,
			Why: "producers that serialize with a schema register it under <topic>-value by default; without one, the topic's values are probably not in wire format, or use another subject naming strategy"}
		if have[subject] {
			c.Status, c.Observed = Pass, "subject "+subject+" exists"
		} else {
			c.Status, c.Observed = Warn, "no subject "+subject+near(subjects, topic)
			c.Fix = "check that the producers of " + topic + " serialize with the registry; values not in wire format reach the app unchanged"
		}
		r.add(c)
	}
}

// near names the subjects that mention topic, to point at another naming strategy.
func near(subjects []string, topic string) string {
	var out []string
	for _, s := range subjects {
		if strings.Contains(s, topic) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return ""
	}
	sort.Strings(out)
	if len(out) > 5 {
		out = append(out[:5], "...")
	}
	return " (subjects naming the topic: " + strings.Join(out, ", ") + ")"
}
