package doctor

import (
	"strings"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/config"
)

func TestEvalCapacity(t *testing.T) {
	const gib = 1 << 30
	base := config.Config{DedupTTL: 168 * time.Hour, DedupIDTTL: 24 * time.Hour, DedupKeyPrefix: "kafka-sidecar",
		KafkaGroup: "orders"}
	withIDs := base
	withIDs.IDHeader = "message-id"
	for _, tc := range []struct {
		name        string
		cfg         config.Config
		rate        float64
		used, limit int64
		want        Status
		observed    []string
	}{
		// 1,000 records/s for a week: 605M position marks, about 144 MiB.
		{"positions fit", base, 1000, 10 << 20, 1 * gib, Pass, []string{"1000 records/s", "about 144.2MiB", "a CloudEvent adds"}},
		{"positions do not fit", base, 10_000, 10 << 20, 1 * gib, Warn, []string{"about 1.4GiB"}},
		// With IDs: 86.4M ID marks of about 179 bytes, about 14.4 GiB.
		{"ID marks do not fit", withIDs, 1000, 10 << 20, 8 * gib, Warn, []string{"ID marks for 24h0m0s about 14.4GiB"}},
		{"ID marks fit", withIDs, 1000, 10 << 20, 32 * gib, Pass, nil},
		{"marks already written are not counted twice", base, 1000, 150 << 20, 256 << 20, Pass, nil},
		{"other data counts", base, 1000, 230 << 20, 256 << 20, Warn, nil},
		{"no limit", base, 1000, 10 << 20, 0, Pass, []string{"no maxmemory limit"}},
		{"idle topics", base, 0, 10 << 20, 64 << 20, Pass, []string{"0 records/s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := evalCapacity(&tc.cfg, tc.rate, tc.used, tc.limit, false)
			if c.ID != "redis.capacity" || c.Status != tc.want {
				t.Fatalf("%s %s (%s), want %s", c.ID, c.Status, c.Observed, tc.want)
			}
			for _, s := range tc.observed {
				if !strings.Contains(c.Observed, s) {
					t.Errorf("observed %q lacks %q", c.Observed, s)
				}
			}
			if c.Status == Warn && !strings.Contains(c.Fix, "maxmemory") {
				t.Errorf("fix %q does not say what to raise", c.Fix)
			}
		})
	}
}
