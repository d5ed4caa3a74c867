package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-sidecar/kafka-sidecar/config"
)

// minHeartbeatVersion is the ConsumerGroupHeartbeat version of Kafka 4.0, where KIP-848 became generally
// available; the client runs the consumer protocol only from it on.
const minHeartbeatVersion = 1

// groupProtocolCheck checks, when SIDECAR_KAFKA_GROUP_PROTOCOL=consumer, that every broker speaks KIP-848's
// ConsumerGroupHeartbeat: the client silently joins with the classic protocol otherwise.
func (r *run) groupProtocolCheck(ctx context.Context) {
	if r.cfg.KafkaGroupProtocol != config.GroupProtocolConsumer {
		return
	}
	const id = "kafka.group_protocol"
	why := "SIDECAR_KAFKA_GROUP_PROTOCOL=consumer (KIP-848) needs every broker to speak ConsumerGroupHeartbeat v1 " +
		"(Kafka 4.0 or later); otherwise the sidecar joins with the classic protocol, with its group-wide rebalances"
	fix := "upgrade the brokers to Kafka 4.0 or later (4.3 or later recommended) with the consumer protocol enabled " +
		"(group.coordinator.rebalance.protocols includes consumer), or set SIDECAR_KAFKA_GROUP_PROTOCOL=classic"
	sctx, cancel := step(ctx)
	versions, err := r.deps.Admin.ApiVersions(sctx)
	cancel()
	if err != nil {
		r.add(Check{ID: id, Status: Warn, Observed: "cannot ask the brokers for their API versions: " + describeErr(err), Why: why})
		return
	}
	var lacking, unknown []string
	nodes := 0
	for _, v := range versions.Sorted() {
		nodes++
		if v.Err != nil {
			unknown = append(unknown, fmt.Sprintf("broker %d (%s)", v.NodeID, describeErr(v.Err)))
			continue
		}
		if maxV, ok := v.KeyMaxVersion(kmsg.ConsumerGroupHeartbeat.Int16()); !ok || maxV < minHeartbeatVersion {
			lacking = append(lacking, fmt.Sprintf("broker %d (%s)", v.NodeID, v.VersionGuess()))
		}
	}
	sort.Strings(lacking)
	switch {
	case len(lacking) > 0:
		r.add(Check{ID: id, Status: Fail, Why: why, Fix: fix,
			Observed: "ConsumerGroupHeartbeat v1 not supported by " + strings.Join(lacking, ", ")})
	case len(unknown) > 0:
		r.add(Check{ID: id, Status: Warn, Why: why,
			Observed: "cannot read the API versions of " + strings.Join(unknown, ", ")})
	default:
		r.add(Check{ID: id, Status: Pass, Why: why,
			Observed: fmt.Sprintf("ConsumerGroupHeartbeat v1 supported by all %s", plural(nodes, "broker"))})
	}
}
