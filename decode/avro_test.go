package decode

import (
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

const orderAvro = `{
  "type": "record", "name": "Order", "namespace": "shop",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
    {"name": "rate", "type": {"type": "fixed", "name": "Rate", "size": 4, "logicalType": "decimal", "precision": 8, "scale": 4}},
    {"name": "placed", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "seen", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "opens", "type": {"type": "int", "logicalType": "time-millis"}},
    {"name": "closes", "type": {"type": "long", "logicalType": "time-micros"}},
    {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
    {"name": "note", "type": ["null", "string"]},
    {"name": "next", "type": ["null", "Order"]},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "attrs", "type": {"type": "map", "values": "long"}},
    {"name": "sum", "type": {"type": "fixed", "name": "Sum", "size": 2}},
    {"name": "raw", "type": "bytes"},
    {"name": "ok", "type": "boolean"},
    {"name": "f", "type": "float"},
    {"name": "d", "type": "double"}
  ]
}`

// order is the Go form hamba/avro encodes orderAvro from.
type order struct {
	ID     string           `avro:"id"`
	Amount *big.Rat         `avro:"amount"`
	Rate   *big.Rat         `avro:"rate"`
	Placed time.Time        `avro:"placed"`
	Seen   time.Time        `avro:"seen"`
	Local  time.Time        `avro:"local"`
	Day    time.Time        `avro:"day"`
	Opens  time.Duration    `avro:"opens"`
	Closes time.Duration    `avro:"closes"`
	Ref    string           `avro:"ref"`
	Status string           `avro:"status"`
	Note   *string          `avro:"note"`
	Next   *order           `avro:"next"`
	Tags   []string         `avro:"tags"`
	Attrs  map[string]int64 `avro:"attrs"`
	Sum    [2]byte          `avro:"sum"`
	Raw    []byte           `avro:"raw"`
	OK     bool             `avro:"ok"`
	F      float32          `avro:"f"`
	D      float64          `avro:"d"`
}

func TestAvroToJSON(t *testing.T) {
	fake, reg := fakeRegistry(t)
	fake.SeedSchema("orders-value", 1, 7, sr.Schema{Schema: orderAvro, Type: sr.TypeAvro})
	schema := avro.MustParse(orderAvro)

	note := "a \"quoted\"\nnote é"
	inner := order{ID: "inner", Amount: big.NewRat(-5, 100), Rate: big.NewRat(0, 1), Placed: time.UnixMilli(0),
		Seen: time.UnixMicro(1), Local: time.UnixMilli(-1), Day: time.Unix(0, 0), Ref: "00000000-0000-0000-0000-000000000000",
		Status: "NEW", Tags: []string{}, Attrs: map[string]int64{}, Raw: []byte{}, D: 1e21}
	v := order{
		ID: "o-1", Amount: big.NewRat(1234567, 100), Rate: big.NewRat(-125, 10000),
		Placed: time.Date(2024, 5, 6, 7, 8, 9, 120e6, time.UTC), Seen: time.Date(2024, 5, 6, 7, 8, 9, 123456e3, time.UTC),
		Local: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), Day: time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
		Opens: 8*time.Hour + 30*time.Minute + 250*time.Millisecond, Closes: 17*time.Hour + 123456*time.Microsecond,
		Ref: "6F1C2A4E-8B3D-4C5E-9F70-1A2B3C4D5E6F", Status: "PAID", Note: &note, Next: &inner,
		Tags: []string{"a", "b"}, Attrs: map[string]int64{"x": -9007199254740993}, Sum: [2]byte{0, 0xff},
		Raw: []byte("hi"), OK: true, F: 0.1, D: -2.5,
	}
	payload, err := avro.Marshal(schema, v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeWith(t, reg, wire(7, payload))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"o-1","amount":"12345.67","rate":"-0.0125","placed":"2024-05-06T07:08:09.12Z",` +
		`"seen":"2024-05-06T07:08:09.123456Z","local":"2024-05-06T07:08:09","day":"2024-02-29",` +
		`"opens":"08:30:00.25","closes":"17:00:00.123456","ref":"6f1c2a4e-8b3d-4c5e-9f70-1a2b3c4d5e6f",` +
		`"status":"PAID","note":"a \"quoted\"\nnote é",` +
		`"next":{"id":"inner","amount":"-0.05","rate":"0.0000","placed":"1970-01-01T00:00:00Z",` +
		`"seen":"1970-01-01T00:00:00.000001Z","local":"1969-12-31T23:59:59.999","day":"1970-01-01",` +
		`"opens":"00:00:00","closes":"00:00:00","ref":"00000000-0000-0000-0000-000000000000","status":"NEW",` +
		`"note":null,"next":null,"tags":[],"attrs":{},"sum":"AAA=","raw":"","ok":false,"f":0,"d":1e+21},` +
		`"tags":["a","b"],"attrs":{"x":-9007199254740993},"sum":"AP8=","raw":"aGk=","ok":true,` +
		`"f":0.10000000149011612,"d":-2.5}`
	// Byte for byte: field order is the schema's, and large integers keep every digit.
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestAvroRejectsCorruptData(t *testing.T) {
	fake, reg := fakeRegistry(t)
	fake.SeedSchema("t-value", 1, 1, sr.Schema{Schema: `{"type":"record","name":"R","fields":[
		{"name":"s","type":"string"},{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}},
		{"name":"u","type":["null","long"]},{"name":"a","type":{"type":"array","items":"null"}}]}`, Type: sr.TypeAvro})
	tests := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"empty", nil, "data ends early"},
		{"string longer than the data", []byte{0x10, 'a'}, "data ends early"},
		{"negative length", []byte{0x01}, "negative length"},
		{"invalid utf-8", []byte{0x02, 0xff}, "not valid UTF-8"},
		{"enum index out of range", []byte{0x00, 0x02}, "enum index 1"},
		{"union branch out of range", []byte{0x00, 0x00, 0x04}, "union branch 2"},
		{"more items than the data holds", []byte{0x00, 0x00, 0x00, 0xfe, 0xff, 0xff, 0xff, 0x0f}, "more items"},
		{"bytes left over", []byte{0x00, 0x00, 0x00, 0x00, 0x07}, "left after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeWith(t, reg, wire(1, tt.payload))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestAvroReferences(t *testing.T) {
	fake, reg := fakeRegistry(t)
	fake.SeedSchema("shop.Money", 1, 1, sr.Schema{Type: sr.TypeAvro,
		Schema: `{"type":"record","name":"Money","namespace":"shop","fields":[{"name":"cents","type":"long"}]}`})
	fake.SeedSchema("orders-value", 1, 2, sr.Schema{Type: sr.TypeAvro,
		Schema:     `{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"total","type":"shop.Money"}]}`,
		References: []sr.SchemaReference{{Name: "shop.Money", Subject: "shop.Money", Version: 1}}})
	got, err := decodeWith(t, reg, wire(2, []byte{0x54}))
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, got, `{"total":{"cents":42}}`)
}

func TestAppendDecimal(t *testing.T) {
	tests := []struct {
		unscaled []byte
		scale    int
		want     string
	}{
		{[]byte{0x04, 0xd2}, 2, `"12.34"`},
		{[]byte{0xfb, 0x2e}, 2, `"-12.34"`},
		{[]byte{0x05}, 3, `"0.005"`},
		{[]byte{0xff}, 1, `"-0.1"`},
		{[]byte{}, 2, `"0.00"`},
		{[]byte{0x07}, 0, `"7"`},
		{[]byte{0x07}, -2, `"700"`},
		{[]byte{0x01, 0, 0, 0, 0, 0, 0, 0, 0}, 2, `"184467440737095516.16"`},
		{[]byte{0xff, 0, 0, 0, 0, 0, 0, 0, 0}, 0, `"-18446744073709551616"`},
		{[]byte{0x80, 0, 0, 0, 0, 0, 0, 0}, 0, `"-9223372036854775808"`},
	}
	for _, tt := range tests {
		if got := string(appendDecimal(nil, tt.unscaled, tt.scale)); got != tt.want {
			t.Errorf("%x scale %d: got %s, want %s", tt.unscaled, tt.scale, got, tt.want)
		}
	}
}

// TestAppendTimeMatchesTheStandardLayout checks the hand-written formatter against time.Format's layouts.
func TestAppendTimeMatchesTheStandardLayout(t *testing.T) {
	times := []time.Time{time.Unix(0, 0), time.UnixMicro(-1), time.UnixMilli(1714979289120),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC),
		time.Date(2024, 2, 29, 7, 8, 9, 100000000, time.UTC)}
	for i := range 1000 {
		times = append(times, time.UnixMicro(int64(i)*7919*1e9+int64(i)*104729).UTC())
	}
	layouts := map[int]string{
		withDate:                     `"2006-01-02"`,
		withClock:                    `"15:04:05.999999999"`,
		withDate | withClock:         `"2006-01-02T15:04:05.999999999"`,
		withDate | withClock | withZ: `"2006-01-02T15:04:05.999999999Z"`,
	}
	for _, tm := range times {
		tm = tm.UTC()
		for parts, layout := range layouts {
			if got, want := string(appendTime(nil, tm, parts)), tm.Format(layout); got != want {
				t.Fatalf("%v parts %b: got %s, want %s", tm, parts, got, want)
			}
		}
	}
}
