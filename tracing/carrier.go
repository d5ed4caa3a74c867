package tracing

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// recordCarrier reads and writes trace context in Kafka record headers. Set appends to the slice, which the
// caller made for the purpose: the headers of a consumed record are never written.
type recordCarrier struct{ headers *[]kgo.RecordHeader }

// Get returns the last value of key, as Kafka's own lookup does.
func (c recordCarrier) Get(key string) string {
	hs := *c.headers
	for i := len(hs) - 1; i >= 0; i-- {
		if strings.EqualFold(hs[i].Key, key) {
			return string(hs[i].Value)
		}
	}
	return ""
}

// Set appends key; the caller removed any earlier one.
func (c recordCarrier) Set(key, value string) {
	*c.headers = append(*c.headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

// Keys lists the header names.
func (c recordCarrier) Keys() []string {
	keys := make([]string, len(*c.headers))
	for i, h := range *c.headers {
		keys[i] = h.Key
	}
	return keys
}

// deliveryCarrier writes trace context into a delivery's extra headers, which replace the record's own.
type deliveryCarrier struct{ d *handler.Delivery }

func (c deliveryCarrier) Get(key string) string {
	v, _ := c.d.ExtraValue(key)
	return v
}

func (c deliveryCarrier) Set(key, value string) { c.d.SetExtra(key, value) }

func (c deliveryCarrier) Keys() []string {
	keys := make([]string, len(c.d.Extra))
	for i, h := range c.d.Extra {
		keys[i] = h.Name
	}
	return keys
}

// withoutTraceContext copies headers without traceparent and tracestate, with room for both.
func withoutTraceContext(headers []kgo.RecordHeader) []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, 0, len(headers)+2)
	for _, h := range headers {
		if !strings.EqualFold(h.Key, "traceparent") && !strings.EqualFold(h.Key, "tracestate") {
			out = append(out, h)
		}
	}
	return out
}
