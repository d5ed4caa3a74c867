package envelope_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/envelope"
	"github.com/twmb/franz-go/pkg/kgo"
)

func ExampleCopy() {
	src := &kgo.Record{
		Topic:     "orders",
		Partition: 3,
		Offset:    41,
		Key:       []byte("customer-42"),
		Value:     []byte(`{"total":12}`),
		Headers:   []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}},
	}
	p := envelope.Provenance{
		ID:                "orders/3/41",
		OriginalTopic:     src.Topic,
		OriginalPartition: src.Partition,
		OriginalOffset:    src.Offset,
		Group:             "billing",
		Attempts:          3,
		NotBefore:         time.UnixMilli(1_700_000_010_000),
		Error:             "http 500: database unavailable",
		ErrorStatus:       500,
	}
	cp := envelope.Copy(src, p, "orders.billing.retry.1")
	fmt.Println(cp.Topic, cp.Partition, string(cp.Key))
	for _, h := range cp.Headers {
		fmt.Printf("%s: %s\n", h.Key, h.Value)
	}

	back, err := envelope.Parse(cp.Headers)
	fmt.Println(back.ID, back.Attempts, back.ErrorStatus, back.NotBefore.UnixMilli(), err)
	fmt.Println(len(envelope.Strip(cp.Headers)), "own header")
	// Output:
	// orders.billing.retry.1 3 customer-42
	// content-type: application/json
	// sidecar-id: orders/3/41
	// sidecar-original-topic: orders
	// sidecar-original-partition: 3
	// sidecar-original-offset: 41
	// sidecar-group: billing
	// sidecar-attempts: 3
	// sidecar-not-before: 1700000010000
	// sidecar-error: http 500: database unavailable
	// sidecar-error-status: 500
	// orders/3/41 3 500 1700000010000 <nil>
	// 1 own header
}

func ExampleParse() {
	headers := []kgo.RecordHeader{
		{Key: "sidecar-id", Value: []byte("orders/3/41")},
		{Key: "sidecar-attempts", Value: []byte("three")},
	}
	p, err := envelope.Parse(headers)
	var bad *envelope.MalformedHeaderError
	if errors.As(err, &bad) {
		fmt.Println("malformed:", bad.Header)
	}
	fmt.Println("still parsed:", p.ID)
	// Output:
	// malformed: sidecar-attempts
	// still parsed: orders/3/41
}
