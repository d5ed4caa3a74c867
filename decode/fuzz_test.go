package decode

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// memorySchemas holds compiled schemas by ID; any other ID is not found.
type memorySchemas map[int]*Schema

func (m memorySchemas) Schema(_ context.Context, id int) (*Schema, error) {
	if s, ok := m[id]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("fetching schema id %d: %w", id, ErrNotFound)
}

// fuzzSchemas compiles the test schemas: 1 Avro, 2 Protobuf, 3 JSON Schema.
func fuzzSchemas(t testing.TB) memorySchemas {
	a, err := newAvroCodec(orderAvro, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newProtoCodec(orderProto, map[string]string{"shop/money.proto": moneyProto})
	if err != nil {
		t.Fatal(err)
	}
	return memorySchemas{
		1: {ID: 1, Type: sr.TypeAvro, codec: a},
		2: {ID: 2, Type: sr.TypeProtobuf, codec: p},
		3: {ID: 3, Type: sr.TypeJSON, codec: jsonCodec{}},
	}
}

func avroSeed(t testing.TB) []byte {
	v := order{ID: "o", Amount: big.NewRat(1, 100), Rate: big.NewRat(1, 1), Placed: time.UnixMilli(5),
		Seen: time.UnixMicro(5), Local: time.UnixMilli(5), Day: time.Unix(0, 0), Ref: "6f1c2a4e-8b3d-4c5e-9f70-1a2b3c4d5e6f",
		Status: "PAID", Tags: []string{"t"}, Attrs: map[string]int64{"k": 1}, Raw: []byte{1}}
	b, err := avro.Marshal(avro.MustParse(orderAvro), v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkOutput fails when a decoder said it succeeded but wrote something that is not JSON.
func checkOutput(t *testing.T, out []byte, err error) {
	if err == nil && !json.Valid(out) {
		t.Fatalf("decoded without error to invalid JSON: %q", out)
	}
}

// FuzzAvro decodes arbitrary bytes as data of a schema with every kind of Avro type: never a panic, never
// invalid JSON.
func FuzzAvro(f *testing.F) {
	s := fuzzSchemas(f)[1]
	f.Add(avroSeed(f))
	f.Add([]byte{})
	f.Add([]byte{0x02, 'o', 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, payload []byte) {
		out, err := s.AppendJSON(nil, payload)
		checkOutput(t, out, err)
	})
}

// FuzzProtobuf decodes arbitrary bytes as a message index and a message of a schema with nested, imported
// and well-known types.
func FuzzProtobuf(f *testing.F) {
	s := fuzzSchemas(f)[2]
	f.Add([]byte{0x02, 0x02, 0x0a, 0x03, 'o', '-', '1', 0x10, 0x01})
	f.Add([]byte{0x00, 0x0a, 0x03, 'A', 'd', 'a'})
	f.Add([]byte{0x04, 0x02, 0x00, 0x12, 0x02, 0x10, 0x05})
	f.Fuzz(func(t *testing.T, payload []byte) {
		out, err := s.AppendJSON(nil, payload)
		checkOutput(t, out, err)
	})
}

// FuzzWireFormat hands arbitrary values through the decoder middleware: every record is answered, either
// passed on (unchanged, or as valid JSON) or dead-lettered; nothing pauses, nothing panics.
func FuzzWireFormat(f *testing.F) {
	dec := New(fuzzSchemas(f), Options{Keys: true})
	f.Add(append([]byte{0, 0, 0, 0, 1}, avroSeed(f)...))
	f.Add([]byte{0, 0, 0, 0, 2, 0x00, 0x0a, 0x01, 'x'})
	f.Add([]byte{0, 0, 0, 0, 3, '{', '}'})
	f.Add([]byte{0, 0, 0, 0, 9})
	f.Add([]byte("plain"))
	f.Fuzz(func(t *testing.T, value []byte) {
		var got *handler.Delivery
		next := handler.DelivererFunc(func(_ context.Context, ds []*handler.Delivery, results []handler.Result) {
			for i, d := range ds {
				c := *d
				got = &c
				results[i] = handler.Result{Outcome: handler.Success}
			}
		})
		results := make([]handler.Result, 1)
		dec.Middleware(next).Deliver(context.Background(), []*handler.Delivery{{Topic: "t", Key: value, Value: value}}, results)
		switch results[0].Outcome {
		case handler.Success:
			if got == nil {
				t.Fatal("answered Success without passing the record on")
			}
			if got.ContentType == ContentTypeJSON && !json.Valid(got.Value) {
				t.Fatalf("presented invalid JSON: %q", got.Value)
			}
		case handler.Permanent:
			if got != nil || results[0].Reason == "" {
				t.Fatalf("dead-lettered %+v but passed it on, or without a reason", results[0])
			}
		default:
			t.Fatalf("unexpected outcome %v", results[0].Outcome)
		}
	})
}
