package doctor

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/kafka-sidecar/kafka-sidecar/config"
)

// TestGroupProtocolCheck asks real (in-process) brokers for their API versions: a cluster that speaks
// KIP-848 passes, one that stops at Kafka 3.9 fails with the fix, and the classic protocol checks nothing.
func TestGroupProtocolCheck(t *testing.T) {
	for _, tt := range []struct {
		name     string
		protocol string
		versions *kversion.Versions
		want     Status
		observed string
	}{
		{"consumer on a KIP-848 cluster", config.GroupProtocolConsumer, nil, Pass, "supported by all 2 brokers"},
		{"consumer on Kafka 3.9", config.GroupProtocolConsumer, kversion.V3_9_0(), Fail, "not supported by broker"},
		{"classic", config.GroupProtocolClassic, kversion.V3_9_0(), "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := []kfake.Opt{kfake.NumBrokers(2)}
			if tt.versions != nil {
				opts = append(opts, kfake.MaxVersions(tt.versions))
			}
			kc := newCluster(t, opts...)
			cfg := testConfig(kc.ListenAddrs())
			cfg.KafkaGroupProtocol = tt.protocol
			rep := runDoctor(t, Deps{Config: cfg, Admin: newAdmin(t, cfg)})
			if tt.want == "" {
				if c, ok := rep.Find("kafka.group_protocol"); ok {
					t.Errorf("the classic protocol got a check: %+v", c)
				}
				return
			}
			c := wantStatus(t, rep, "kafka.group_protocol", tt.want)
			if !strings.Contains(c.Observed, tt.observed) {
				t.Errorf("observed %q, want it to say %q", c.Observed, tt.observed)
			}
			if tt.want == Fail && !strings.Contains(c.Fix, "SIDECAR_KAFKA_GROUP_PROTOCOL=classic") {
				t.Errorf("fix %q does not offer the classic protocol", c.Fix)
			}
		})
	}
}
