package envelope

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers a replayed record carries on its source topic, next to the provenance headers Copy
// writes (sidecar-id, sidecar-original-*, sidecar-attempts, sidecar-group).
const (
	// HeaderReplayedFrom names the dead-letter record a replay came from: <dlq topic>/<partition>/<offset>.
	HeaderReplayedFrom = "sidecar-replayed-from"
	// HeaderReplayCount counts how often the message has been replayed, this replay included.
	HeaderReplayCount = "sidecar-replay-count"
)

// IsReplay reports whether headers belong to a record that `dlq replay` sent back to its source topic. The
// pipeline takes such a record's provenance (its message ID above all) from its headers, as it does on
// retry topics, so dedup sees the replay as the message it was and suppresses it if the app already has it.
func IsReplay(headers []kgo.RecordHeader) bool {
	for _, h := range headers {
		if h.Key == HeaderReplayedFrom && len(h.Value) > 0 {
			return true
		}
	}
	return false
}

// ReplayCount returns the sidecar-replay-count among headers (the last one wins), 0 when absent or
// malformed: a damaged count must not block a replay the operator asked for, and the replay
// marks still hold the count.
func ReplayCount(headers []kgo.RecordHeader) int {
	n := 0
	for _, h := range headers {
		if h.Key == HeaderReplayCount {
			v, err := strconv.Atoi(string(h.Value))
			if err != nil || v < 0 {
				v = 0
			}
			n = v
		}
	}
	return n
}
