package decode

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/bufbuild/protocompile"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

const moneyProto = `syntax = "proto3";
package shop;
message Money { string currency = 1; int64 units = 2; }
`

const orderProto = `syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "shop/money.proto";
message Customer { string name = 1; }
message Order {
  message Line { string sku = 1; Money price = 2; }
  enum Status { NEW = 0; PAID = 1; }
  string id = 1;
  Status status = 2;
  repeated Line lines = 3;
  google.protobuf.Timestamp placed_at = 4;
  map<string, int64> counts = 5;
  bytes sig = 6;
}
`

// compileForTest compiles the test schemas the way a producer would have them.
func compileForTest(t testing.TB) protoreflect.FileDescriptor {
	t.Helper()
	files := map[string]string{"shop/money.proto": moneyProto, "shop/order.proto": orderProto}
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(files)})}
	fds, err := c.Compile(context.Background(), "shop/order.proto")
	if err != nil {
		t.Fatal(err)
	}
	return fds[0]
}

// protoPayload encodes the message md from its JSON form, after the message index.
func protoPayload(t testing.TB, md protoreflect.MessageDescriptor, index []byte, js string) []byte {
	t.Helper()
	m := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal([]byte(js), m); err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return append(append([]byte{}, index...), b...)
}

func TestProtobufToJSON(t *testing.T) {
	fd := compileForTest(t)
	order := fd.Messages().ByName("Order")
	const orderJSON = `{"id":"o-1","status":"PAID","lines":[{"sku":"a","price":{"currency":"EUR","units":"-9007199254740993"}}],` +
		`"placedAt":"2024-05-06T07:08:09.123Z","counts":{"x":"3"},"sig":"AAH+"}`

	// The registry may hold the schema as .proto source (Confluent's default answer) or as a serialized
	// descriptor in base64 (how some serializers register it, and what some registries hand back).
	// Python's serializer registers descriptors without JSON names: left out here too.
	serialized := func(f protoreflect.FileDescriptor) string {
		fdp := protodesc.ToFileDescriptorProto(f)
		var strip func(ms []*descriptorpb.DescriptorProto)
		strip = func(ms []*descriptorpb.DescriptorProto) {
			for _, m := range ms {
				for _, fld := range m.GetField() {
					fld.JsonName = nil
				}
				strip(m.GetNestedType())
			}
		}
		strip(fdp.GetMessageType())
		b, err := proto.Marshal(fdp)
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	forms := map[string][2]string{
		"source":     {moneyProto, orderProto},
		"serialized": {serialized(fd.Imports().Get(1).FileDescriptor), serialized(fd)},
	}
	for name, form := range forms {
		t.Run(name, func(t *testing.T) {
			fake, reg := fakeRegistry(t)
			fake.SeedSchema("shop/money.proto", 1, 1, sr.Schema{Type: sr.TypeProtobuf, Schema: form[0]})
			fake.SeedSchema("orders-value", 1, 2, sr.Schema{Type: sr.TypeProtobuf, Schema: form[1],
				References: []sr.SchemaReference{{Name: "shop/money.proto", Subject: "shop/money.proto", Version: 1}}})

			// Order is the second message: index [1], written as length 1 then 1, both zigzag varints.
			got, err := decodeWith(t, reg, wire(2, protoPayload(t, order, []byte{0x02, 0x02}, orderJSON)))
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, got, orderJSON)

			// A nested message: Order.Line is index [1, 0].
			line := order.Messages().ByName("Line")
			got, err = decodeWith(t, reg, wire(2, protoPayload(t, line, []byte{0x04, 0x02, 0x00}, `{"sku":"n"}`)))
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, got, `{"sku":"n"}`)

			// The first message by the one-byte shortcut.
			got, err = decodeWith(t, reg, wire(2, protoPayload(t, fd.Messages().Get(0), []byte{0x00}, `{"name":"Ada"}`)))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != `{"name":"Ada"}` {
				t.Fatalf("got %s: want compact JSON", got)
			}
		})
	}
}

func TestProtobufRejectsCorruptData(t *testing.T) {
	fake, reg := fakeRegistry(t)
	fake.SeedSchema("shop/money.proto", 1, 1, sr.Schema{Type: sr.TypeProtobuf, Schema: moneyProto})
	fake.SeedSchema("orders-value", 1, 2, sr.Schema{Type: sr.TypeProtobuf, Schema: orderProto,
		References: []sr.SchemaReference{{Name: "shop/money.proto", Subject: "shop/money.proto", Version: 1}}})
	tests := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"no index", nil, "message index"},
		{"index beyond the messages", []byte{0x02, 0x08}, "names no message type"},
		{"negative index length", []byte{0x01}, "message index"},
		{"truncated field", []byte{0x02, 0x02, 0x0a, 0x05, 'a'}, "reading shop.Order"},
		{"invalid utf-8 in a string", []byte{0x02, 0x02, 0x0a, 0x01, 0xff}, "reading shop.Order"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeWith(t, reg, wire(2, tt.payload))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestProtobufMissingReference(t *testing.T) {
	fake, reg := fakeRegistry(t)
	fake.SeedSchema("orders-value", 1, 2, sr.Schema{Type: sr.TypeProtobuf, Schema: orderProto})
	_, err := reg.Schema(context.Background(), 2)
	if err == nil || !strings.Contains(err.Error(), "shop/money.proto") {
		t.Fatalf("got %v, want a compile error naming the missing import", err)
	}
}

func TestJSONSchemaPassesThrough(t *testing.T) {
	fake, reg := fakeRegistry(t)
	fake.SeedSchema("t-value", 1, 3, sr.Schema{Type: sr.TypeJSON, Schema: `{"type":"object"}`})
	got, err := decodeWith(t, reg, wire(3, []byte(` {"a": [1, 2.5, "x"]}`+"\n")))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"a": [1, 2.5, "x"]}` {
		t.Fatalf("got %q", got)
	}
	if _, err := decodeWith(t, reg, wire(3, []byte(`{"a":`))); err == nil {
		t.Fatal("truncated JSON decoded")
	}
}

// TestProtobufConfluentImports: a schema may import Confluent's own files without references, as it does the
// well-known types.
func TestProtobufConfluentImports(t *testing.T) {
	fake, reg := fakeRegistry(t)
	fake.SeedSchema("prices-value", 1, 4, sr.Schema{Type: sr.TypeProtobuf, Schema: `syntax = "proto3";
package shop;
import "confluent/meta.proto";
import "confluent/type/decimal.proto";
message Price {
  option (confluent.message_meta) = { doc: "a price" };
  confluent.type.Decimal amount = 1 [(confluent.field_meta) = { tags: ["PII"] }];
}
`})
	// amount: field 1, a Decimal with value 0x04d2 (1234) and scale 2.
	payload := []byte{0x00, 0x0a, 0x06, 0x0a, 0x02, 0x04, 0xd2, 0x18, 0x02}
	got, err := decodeWith(t, reg, wire(4, payload))
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, got, `{"amount":{"value":"BNI=","scale":2}}`)
}
