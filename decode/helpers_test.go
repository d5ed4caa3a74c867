package decode

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// wire prefixes payload with the Confluent header of id.
func wire(id int, payload []byte) []byte {
	b := make([]byte, 5, 5+len(payload))
	binary.BigEndian.PutUint32(b[1:], uint32(id))
	return append(b, payload...)
}

// fakeRegistry starts an in-memory registry and returns it with a Registry that asks it.
func fakeRegistry(t *testing.T) (*srfake.Registry, *Registry) {
	t.Helper()
	fake := srfake.New()
	t.Cleanup(fake.Close)
	cl, err := sr.NewClient(sr.URLs(fake.URL()))
	if err != nil {
		t.Fatal(err)
	}
	return fake, NewRegistry(cl, RegistryOptions{})
}

// sameJSON fails unless got and want are the same JSON value.
func sameJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// decodeWith decodes data (wire format) through reg.
func decodeWith(t *testing.T, reg *Registry, data []byte) ([]byte, error) {
	t.Helper()
	var h sr.ConfluentHeader
	id, payload, err := h.DecodeID(data)
	if err != nil {
		return nil, err
	}
	s, err := reg.Schema(context.Background(), id)
	if err != nil {
		return nil, err
	}
	return s.AppendJSON(nil, payload)
}
