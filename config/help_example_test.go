package config_test

import (
	"fmt"

	"github.com/kafka-sidecar/kafka-sidecar/config"
)

func ExampleLoadFrom() {
	_, err := config.LoadFrom([]string{
		"SIDECAR_KAFKA_TOPICS=orders",
		"SIDECAR_ORDERING=random",
		"SIDECAR_APP_TIMEOUT=soon",
	})
	fmt.Println(err)
	// Output:
	// invalid configuration:
	//   SIDECAR_APP_TIMEOUT: cannot parse as a duration (e.g. 30s, 5m): "soon" is not a duration
	//   SIDECAR_KAFKA_BROKERS: is required but not set
	//   SIDECAR_KAFKA_GROUP: is required but not set
	//   SIDECAR_ORDERING: "random" is not one of partition, key, unordered
	//   SIDECAR_REDIS_URL: is required when SIDECAR_DEDUP=redis (the default); set it, or SIDECAR_DEDUP=memory|off
}
