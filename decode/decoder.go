package decode

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// Headers the app receives with a decoded record.
const (
	HeaderSchemaID         = "Kafka-Schema-Id"
	HeaderSchemaSubject    = "Kafka-Schema-Subject"
	HeaderKeySchemaID      = "Kafka-Key-Schema-Id"
	HeaderKeySchemaSubject = "Kafka-Key-Schema-Subject"
)

// ContentTypeJSON is the content type of a decoded value.
const ContentTypeJSON = "application/json"

// Schemas finds the compiled schema of an ID; *Registry is the implementation.
type Schemas interface {
	Schema(ctx context.Context, id int) (*Schema, error)
}

// Options configures a Decoder.
type Options struct {
	// Keys decodes keys in wire format too.
	Keys bool
}

// Decoder is the middleware that presents records in wire format as JSON. It is safe for concurrent use.
type Decoder struct {
	schemas Schemas
	keys    bool
}

// New returns a Decoder that finds schemas in schemas.
func New(schemas Schemas, opts Options) *Decoder {
	return &Decoder{schemas: schemas, keys: opts.Keys}
}

// Unavailable returns why the registry could not be asked, and since when, while it cannot; nil once it
// answered again, and always nil when schemas do not come from a Registry. Readiness reports it.
func (d *Decoder) Unavailable() error {
	if r, ok := d.schemas.(interface{ Unavailable() error }); ok {
		return r.Unavailable()
	}
	return nil
}

// inWireFormat reports whether b starts like a record in Confluent wire format.
func inWireFormat(b []byte) bool { return len(b) >= 5 && b[0] == 0 }

// Middleware returns next behind the decoder.
func (d *Decoder) Middleware(next handler.Deliverer) handler.Deliverer {
	return handler.DelivererFunc(func(ctx context.Context, ds []*handler.Delivery, results []handler.Result) {
		d.deliver(ctx, next, ds, results)
	})
}

// saved is what the decoder changed in a delivery, to put back after the call.
type saved struct {
	d           *handler.Delivery
	key, value  []byte
	contentType string
	extra       []handler.Header
}

func (d *Decoder) deliver(ctx context.Context, next handler.Deliverer, ds []*handler.Delivery, results []handler.Result) {
	encoded := false
	for _, del := range ds {
		if inWireFormat(del.Value) || (d.keys && inWireFormat(del.Key)) {
			encoded = true
			break
		}
	}
	if !encoded {
		next.Deliver(ctx, ds, results)
		return
	}
	pass := make([]*handler.Delivery, 0, len(ds))
	at := make([]int, 0, len(ds)) // at[j] is the index in ds of pass[j]
	var changed []saved
	for i, del := range ds {
		orig := saved{d: del, key: del.Key, value: del.Value, contentType: del.ContentType, extra: del.Extra}
		res, ok := d.decode(ctx, del)
		if !ok {
			results[i] = res
			*del = restore(*del, orig)
			continue
		}
		changed = append(changed, orig)
		pass = append(pass, del)
		at = append(at, i)
	}
	if len(pass) > 0 {
		sub := make([]handler.Result, len(pass))
		next.Deliver(ctx, pass, sub)
		for j, i := range at {
			results[i] = sub[j]
		}
	}
	for _, s := range changed {
		*s.d = restore(*s.d, s)
	}
}

// restore puts back the fields the decoder changes.
func restore(d handler.Delivery, s saved) handler.Delivery {
	d.Key, d.Value, d.ContentType, d.Extra = s.key, s.value, s.contentType, s.extra
	return d
}

// decode replaces the value (and key) of del with their JSON form when they are in wire format; ok is false
// with the answer for the record when it cannot be delivered.
func (d *Decoder) decode(ctx context.Context, del *handler.Delivery) (handler.Result, bool) {
	if inWireFormat(del.Value) {
		out, s, err := d.decodeOne(ctx, del.Value)
		if err != nil {
			return d.failed(err, "value"), false
		}
		del.Value = out
		del.ContentType = ContentTypeJSON
		del.SetExtra(HeaderSchemaID, strconv.Itoa(s.ID))
		if sub := s.Subject(del.Topic, false); sub != "" {
			del.SetExtra(HeaderSchemaSubject, sub)
		}
	}
	if d.keys && inWireFormat(del.Key) {
		out, s, err := d.decodeOne(ctx, del.Key)
		if err != nil {
			return d.failed(err, "key"), false
		}
		del.Key = out
		del.SetExtra(HeaderKeySchemaID, strconv.Itoa(s.ID))
		if sub := s.Subject(del.Topic, true); sub != "" {
			del.SetExtra(HeaderKeySchemaSubject, sub)
		}
	}
	return handler.Result{}, true
}

// decodeOne decodes one value or key in wire format.
func (d *Decoder) decodeOne(ctx context.Context, b []byte) ([]byte, *Schema, error) {
	var header sr.ConfluentHeader
	id, payload, err := header.DecodeID(b)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the wire format header: %w", err)
	}
	s, err := d.schemas.Schema(ctx, id)
	if errors.Is(err, ErrUnavailable) {
		return nil, nil, err
	}
	if err != nil {
		return nil, nil, fmt.Errorf("schema id %d: %w", id, err)
	}
	out, err := s.AppendJSON(make([]byte, 0, 2*len(payload)+16), payload)
	if err != nil {
		return nil, nil, fmt.Errorf("schema id %d (%s): %w", id, s.Type, err)
	}
	return out, s, nil
}

// failed is the answer for a record that cannot be decoded: a pause while the registry is down, else the
// dead-letter topic.
func (d *Decoder) failed(err error, what string) handler.Result {
	if errors.Is(err, ErrUnavailable) {
		return handler.Result{Outcome: handler.AppUnavailable, Reason: truncate("decoding the "+what+": "+err.Error(), 400)}
	}
	return handler.Result{Outcome: handler.Permanent, Reason: truncate("decoding the "+what+": "+err.Error(), 400)}
}
