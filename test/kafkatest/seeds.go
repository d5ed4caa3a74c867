package kafkatest

import (
	"os"
	"strings"
)

// EnvBrokers names the environment variable that holds the cluster's bootstrap servers, comma-separated.
// Set, it means "run the suite against the real cluster too"; unset or blank, real-cluster tests skip.
const EnvBrokers = "TEST_KAFKA_BROKERS"

// DefaultSeeds is what test/kafka/cluster.sh seeds prints: the broker listeners of nodes 1, 2 and 3.
const DefaultSeeds = "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"

// Seeds returns the value of [EnvBrokers] with surrounding blanks removed, and whether it is set to
// something other than blanks. Callers skip their real-cluster tests when ok is false.
func Seeds() (seeds string, ok bool) {
	seeds = strings.TrimSpace(os.Getenv(EnvBrokers))
	return seeds, seeds != ""
}

// SplitSeeds splits a comma-separated list of host:port seeds into the form kgo.SeedBrokers takes.
// Blanks around each entry are dropped, and so are empty entries, so "a:1, b:2," gives [a:1 b:2]: a
// stray comma in an environment variable should not become a broker named "".
func SplitSeeds(seeds string) []string {
	var out []string
	for s := range strings.SplitSeq(seeds, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// EnvGroupProtocol names the environment variable that, set to classic or consumer, runs the suites'
// sidecars with that SIDECAR_KAFKA_GROUP_PROTOCOL; unset, they use the default.
const EnvGroupProtocol = "TEST_KAFKA_GROUP_PROTOCOL"

// GroupProtocolEnv returns the sidecar variable that [EnvGroupProtocol] asks for ("SIDECAR_KAFKA_GROUP_PROTOCOL=
// consumer"), or nothing when it is unset, for the suites to append to a sidecar's environment.
func GroupProtocolEnv() []string {
	if p := strings.TrimSpace(os.Getenv(EnvGroupProtocol)); p != "" {
		return []string{"SIDECAR_KAFKA_GROUP_PROTOCOL=" + p}
	}
	return nil
}
