package dlq

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kafka-sidecar/kafka-sidecar/envelope"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestDecode(t *testing.T) {
	failedAt := time.Date(2025, 3, 1, 12, 30, 0, 250e6, time.UTC)
	dl := envelope.DeadLetter(&kgo.Record{Key: []byte("customer-42"), Value: []byte("v")}, envelope.Provenance{
		ID: "orders/3/41", OriginalTopic: "orders", OriginalPartition: 3, OriginalOffset: 41,
		Group: "billing", Attempts: 12, Error: "http 502: bad gateway", ErrorStatus: 502, FailedAt: failedAt,
	}, "orders.billing.dlq")
	dl.Partition, dl.Offset = 3, 7

	full := Entry{
		DLQPartition: 3, DLQOffset: 7, ID: "orders/3/41", OriginalTopic: "orders", OriginalPartition: 3,
		OriginalOffset: 41, Attempts: 12, Status: "502", Error: "http 502: bad gateway", FailedAt: failedAt,
		Key: "customer-42",
	}
	withKey := func(key, enc string) Entry { e := full; e.Key, e.KeyEncoding = key, enc; return e }
	recWithKey := func(key []byte) *kgo.Record { r := *dl; r.Key = key; return &r }

	tests := []struct {
		name    string
		rec     *kgo.Record
		want    Entry
		wantErr string // substring of DecodeError
	}{
		{name: "dead letter", rec: dl, want: full},
		{name: "binary key in base64", rec: recWithKey([]byte{0, 1, 0xff}), want: withKey("AAH/", "base64")},
		{name: "key with a newline in base64", rec: recWithKey([]byte("a\nb")), want: withKey("YQpi", "base64")},
		{name: "no key", rec: recWithKey(nil), want: withKey("", "")},
		{
			name: "timeout has no status",
			rec: &kgo.Record{Partition: 0, Offset: 2, Headers: []kgo.RecordHeader{
				{Key: envelope.HeaderID, Value: []byte("i")},
				{Key: envelope.HeaderError, Value: []byte("timeout after 30s")},
			}},
			want: Entry{DLQOffset: 2, ID: "i", Error: "timeout after 30s"},
		},
		{
			name: "damaged headers still decode",
			rec: &kgo.Record{Partition: 1, Offset: 9, Headers: []kgo.RecordHeader{
				{Key: envelope.HeaderID, Value: []byte("i")},
				{Key: envelope.HeaderAttempts, Value: []byte("many")},
			}},
			want:    Entry{DLQPartition: 1, DLQOffset: 9, ID: "i"},
			wantErr: envelope.HeaderAttempts,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decode(tt.rec)
			if !strings.Contains(got.DecodeError, tt.wantErr) || (tt.wantErr == "") != (got.DecodeError == "") {
				t.Fatalf("DecodeError %q, want one naming %q", got.DecodeError, tt.wantErr)
			}
			got.DecodeError = ""
			if !got.FailedAt.Equal(tt.want.FailedAt) {
				t.Fatalf("FailedAt %v, want %v", got.FailedAt, tt.want.FailedAt)
			}
			got.FailedAt, tt.want.FailedAt = time.Time{}, time.Time{}
			if got != tt.want {
				t.Fatalf("Decode() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestEntryJSONNames(t *testing.T) {
	// The names `dlq list --output json` prints are part of the contract.
	contract := []string{
		"dlq_partition", "dlq_offset", "id", "original_topic", "original_partition", "original_offset",
		"attempts", "status", "error", "failed_at", "key",
	}
	tests := []struct {
		name  string
		entry Entry
		want  []string
	}{
		{"well-formed", Entry{FailedAt: time.Unix(1, 0)}, contract},
		{"binary key and damage add their fields", Entry{FailedAt: time.Unix(1, 0), KeyEncoding: "base64", DecodeError: "x"}, append(slices.Clone(contract), "key_encoding", "decode_error")},
		{"unknown failure time is left out", Entry{}, slices.DeleteFunc(slices.Clone(contract), func(s string) bool { return s == "failed_at" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.entry)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			var got []string
			for k := range m {
				got = append(got, k)
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tt.want))
			if !slices.Equal(got, want) {
				t.Fatalf("JSON fields %v, want %v", got, want)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	rec := deadLetter("orders.billing.dlq", 3, []byte("customer-42"))
	b.ReportAllocs()
	for b.Loop() {
		_ = Decode(rec)
	}
}
