package dlq_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-sidecar/kafka-sidecar/dlq"
	"github.com/kafka-sidecar/kafka-sidecar/envelope"
)

func ExampleDecode() {
	src := &kgo.Record{Topic: "orders", Partition: 3, Offset: 41, Key: []byte("customer-42"), Value: []byte("{}")}
	rec := envelope.DeadLetter(src, envelope.Provenance{
		ID:                "orders/3/41",
		OriginalTopic:     src.Topic,
		OriginalPartition: src.Partition,
		OriginalOffset:    src.Offset,
		Group:             "billing",
		Attempts:          1,
		Error:             "http 422: unknown currency",
		ErrorStatus:       422,
		FailedAt:          time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC),
	}, "orders.billing.dlq")
	rec.Offset = 7 // as stored on the dead-letter topic

	line, _ := json.Marshal(dlq.Decode(rec))
	fmt.Println(string(line))
	// Output:
	// {"dlq_partition":3,"dlq_offset":7,"id":"orders/3/41","original_topic":"orders","original_partition":3,"original_offset":41,"attempts":1,"status":"422","error":"http 422: unknown currency","failed_at":"2025-03-01T12:30:00Z","key":"customer-42"}
}
