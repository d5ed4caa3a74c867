package cloudevents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// Mode is how records are presented to the app, the value of SIDECAR_CLOUDEVENTS.
type Mode uint8

const (
	// Off presents every record as it is.
	Off Mode = iota
	// Auto presents records in CloudEvents Kafka binary mode in HTTP binary mode.
	Auto
	// Wrap presents every record as a CloudEvent.
	Wrap
)

// ParseMode reads a SIDECAR_CLOUDEVENTS value: auto, wrap or off.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "auto":
		return Auto, nil
	case "wrap":
		return Wrap, nil
	case "off":
		return Off, nil
	}
	return Off, fmt.Errorf("parsing the cloudevents mode: %q is not auto, wrap or off", s)
}

// Names of the Kafka protocol binding (Kafka record headers) and of the HTTP protocol binding.
const (
	// kafkaPrefix starts the header of every attribute in Kafka binary mode.
	kafkaPrefix = "ce_"
	// httpPrefix starts the header of every attribute in HTTP binary mode.
	httpPrefix = "ce-"
	// contentTypeHeader is the record header that carries datacontenttype, in both modes.
	contentTypeHeader = "content-type"
	// structuredPrefix starts the content type of a record in structured mode (+json, +avro, ...); the batch
	// format has one of its own, which a single record never carries.
	structuredPrefix = "application/cloudevents"
	batchPrefix      = "application/cloudevents-batch"
	// SpecVersion is the CloudEvents version of the events Wrap makes.
	SpecVersion = "1.0"
)

// kafkaSpec maps ce_-prefixed header names to the attributes of each CloudEvents version the SDK knows.
var kafkaSpec = spec.WithPrefix(kafkaPrefix)

// Mode of one record, as the Kafka protocol binding tells it.
type recordMode uint8

const (
	notEvent recordMode = iota
	binaryMode
	structuredMode
)

// modeOf tells a record's mode from its headers: binary when it has a ce_specversion header, structured when
// its content type is a CloudEvents format. It does not allocate, as it runs for every record.
func modeOf(headers []kgo.RecordHeader) recordMode {
	structured := false
	for i := range headers {
		h := &headers[i]
		switch {
		case h.Key == kafkaPrefix+"specversion":
			return binaryMode
		case strings.EqualFold(h.Key, contentTypeHeader):
			structured = isStructured(h.Value)
		}
	}
	if structured {
		return structuredMode
	}
	return notEvent
}

// isStructured reports whether a content type names a CloudEvents event format (and not the batch format).
func isStructured(ct []byte) bool {
	if len(ct) < len(structuredPrefix) || !strings.EqualFold(string(ct[:len(structuredPrefix)]), structuredPrefix) {
		return false
	}
	return len(ct) < len(batchPrefix) || !strings.EqualFold(string(ct[:len(batchPrefix)]), batchPrefix)
}

// MessageID returns the message ID of a record that is a CloudEvent: its source and id together (the pair
// the spec makes unique per event), as the source, a space, and the id, with any "%" and space in the source
// percent-encoded so that no two pairs give one ID. ok is false when the record is not a CloudEvent, or it
// lacks a non-empty id or source: its ID is then found the usual way. In structured mode the value is read
// as JSON; only application/cloudevents+json gives an ID there.
func MessageID(headers []kgo.RecordHeader, value []byte) (id string, ok bool) {
	var source string
	switch modeOf(headers) {
	case binaryMode:
		source, id = lastValue(headers, kafkaPrefix+"source"), lastValue(headers, kafkaPrefix+"id")
	case structuredMode:
		var ev struct {
			ID     string `json:"id"`
			Source string `json:"source"`
		}
		if json.Unmarshal(value, &ev) != nil {
			return "", false
		}
		source, id = ev.Source, ev.ID
	default:
		return "", false
	}
	if source == "" || id == "" {
		return "", false
	}
	if strings.ContainsAny(source, "% ") {
		source = strings.NewReplacer("%", "%25", " ", "%20").Replace(source)
	}
	return source + " " + id, true
}

// lastValue returns the value of the last header named key, as Kafka's own lookup does, or "".
func lastValue(headers []kgo.RecordHeader, key string) string {
	for i := len(headers) - 1; i >= 0; i-- {
		if headers[i].Key == key {
			return string(headers[i].Value)
		}
	}
	return ""
}

// Options configures Middleware.
type Options struct {
	// Mode is Auto, Wrap or Off.
	Mode Mode
	// Type is the type attribute of the events Wrap makes.
	Type string
}

// Middleware returns the handler.Middleware that presents records as opts.Mode says, or nil for Off (which
// handler.Chain skips). A record in binary mode whose ce_* headers do not make a valid event is answered
// Permanent, with the reason, without reaching the app: it goes to the dead-letter topic as it is.
func Middleware(opts Options) handler.Middleware {
	if opts.Mode == Off {
		return nil
	}
	return func(next handler.Deliverer) handler.Deliverer {
		return &presenter{next: next, wrap: opts.Mode == Wrap, typ: opts.Type}
	}
}

// presenter is the middleware's Deliverer.
type presenter struct {
	next handler.Deliverer
	wrap bool
	typ  string
}

// saved is what a delivery looked like before the presenter changed it.
type saved struct {
	changed bool
	headers []kgo.RecordHeader
	extra   []handler.Header
}

// Deliver presents each delivery, passes on those that can be presented, and gives the callers' deliveries
// back their fields afterwards, so that a delivery made again (a later attempt) is presented afresh.
func (p *presenter) Deliver(ctx context.Context, ds []*handler.Delivery, results []handler.Result) {
	var before []saved
	var failed []int
	for i, d := range ds {
		m := modeOf(d.Headers)
		if (m == notEvent && !p.wrap) || m == structuredMode {
			continue
		}
		if before == nil {
			before = make([]saved, len(ds))
		}
		before[i] = saved{changed: true, headers: d.Headers, extra: d.Extra}
		var err error
		if m == binaryMode {
			err = presentBinary(d)
		} else {
			p.presentWrapped(d)
		}
		if err != nil {
			results[i] = handler.Result{Outcome: handler.Permanent, Reason: "cloudevents: " + err.Error()}
			failed = append(failed, i)
		}
	}
	if before == nil {
		p.next.Deliver(ctx, ds, results)
		return
	}
	if failed == nil {
		p.next.Deliver(ctx, ds, results)
	} else {
		p.deliverValid(ctx, ds, results, failed)
	}
	for i, d := range ds {
		if before[i].changed {
			d.Headers, d.Extra = before[i].headers, before[i].extra
		}
	}
}

// deliverValid passes on every delivery but the failed ones, whose results are already set.
func (p *presenter) deliverValid(ctx context.Context, ds []*handler.Delivery, results []handler.Result, failed []int) {
	if len(failed) == len(ds) {
		return
	}
	rest := make([]*handler.Delivery, 0, len(ds)-len(failed))
	at := make([]int, 0, cap(rest))
	f := 0
	for i, d := range ds {
		if f < len(failed) && failed[f] == i {
			f++
			continue
		}
		rest = append(rest, d)
		at = append(at, i)
	}
	res := make([]handler.Result, len(rest))
	p.next.Deliver(ctx, rest, res)
	for j, i := range at {
		results[i] = res[j]
	}
}

// presentBinary turns a record in Kafka binary mode into an HTTP binary-mode delivery: every ce_<name>
// header becomes the extra header ce-<name>, and the record headers the app is shown no longer hold them.
// The attributes are checked against the spec first, with the CloudEvents SDK's rules.
func presentBinary(d *handler.Delivery) error {
	if err := validate(d.Headers); err != nil {
		return err
	}
	n := 0
	for i := range d.Headers {
		if strings.HasPrefix(d.Headers[i].Key, kafkaPrefix) {
			n++
		}
	}
	kept := make([]kgo.RecordHeader, 0, len(d.Headers)-n)
	extra := withoutAttributes(d.Extra, n)
	for _, h := range d.Headers {
		name, ok := strings.CutPrefix(h.Key, kafkaPrefix)
		if !ok {
			kept = append(kept, h)
			continue
		}
		extra = setHeader(extra, httpPrefix+name, encodeValue(h.Value))
	}
	d.Headers, d.Extra = kept, extra
	return nil
}

// presentWrapped presents a record that is no CloudEvent as one in HTTP binary mode.
func (p *presenter) presentWrapped(d *handler.Delivery) {
	extra := withoutAttributes(d.Extra, 5)
	extra = append(extra,
		handler.Header{Name: httpPrefix + "specversion", Value: SpecVersion},
		handler.Header{Name: httpPrefix + "id", Value: encodeValue([]byte(d.ID))},
		handler.Header{Name: httpPrefix + "source", Value: Source(d.Topic, d.Partition)},
		handler.Header{Name: httpPrefix + "type", Value: encodeValue([]byte(p.typ))},
	)
	if !d.Timestamp.IsZero() {
		extra = append(extra, handler.Header{Name: httpPrefix + "time", Value: d.Timestamp.UTC().Format(time.RFC3339Nano)})
	}
	d.Extra = extra
}

// Source is the source attribute of a wrapped record: kafka://<topic>/<partition> of the record as first
// consumed.
func Source(topic string, partition int32) string {
	return "kafka://" + topic + "/" + strconv.FormatInt(int64(partition), 10)
}

// withoutAttributes copies extra without any ce-* header an earlier middleware set, with room for n more;
// the attributes set here replace them.
func withoutAttributes(extra []handler.Header, n int) []handler.Header {
	out := make([]handler.Header, 0, len(extra)+n)
	for _, h := range extra {
		if len(h.Name) < len(httpPrefix) || !strings.EqualFold(h.Name[:len(httpPrefix)], httpPrefix) {
			out = append(out, h)
		}
	}
	return out
}

// setHeader sets name to value in extra, the last of repeated record headers winning, as in Kafka's lookup.
func setHeader(extra []handler.Header, name, value string) []handler.Header {
	for i := range extra {
		if extra[i].Name == name {
			extra[i].Value = value
			return extra
		}
	}
	return append(extra, handler.Header{Name: name, Value: value})
}

// encodeValue percent-encodes an attribute value for an HTTP header as the HTTP protocol binding says: space,
// double quote, percent and every byte outside printable ASCII (so UTF-8 travels as its encoded bytes).
func encodeValue(v []byte) string {
	const hexDigits = "0123456789ABCDEF"
	n := 0
	for _, c := range v {
		if needsEncoding(c) {
			n++
		}
	}
	if n == 0 {
		return string(v)
	}
	b := make([]byte, 0, len(v)+2*n)
	for _, c := range v {
		if needsEncoding(c) {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&0xf])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

func needsEncoding(c byte) bool { return c <= ' ' || c == '"' || c == '%' || c >= 0x7f }

// errNoVersion rejects a ce_specversion the SDK does not know.
var errNoVersion = errors.New("unknown specversion")

// validate checks that the ce_* headers make a valid event: a known specversion, the required attributes,
// and well-formed values (a URI-reference source, an RFC 3339 time, lower-case alphanumeric extension
// names), by setting them on an SDK event context and validating it.
func validate(headers []kgo.RecordHeader) error {
	v := kafkaSpec.Version(lastValue(headers, kafkaPrefix+"specversion"))
	if v == nil {
		return fmt.Errorf("invalid binary-mode event: %w %q", errNoVersion, lastValue(headers, kafkaPrefix+"specversion"))
	}
	ctx := v.NewContext()
	for i := range headers {
		h := &headers[i]
		name, ok := strings.CutPrefix(h.Key, kafkaPrefix)
		if !ok || name == "specversion" {
			continue
		}
		var err error
		if a := v.Attribute(h.Key); a != nil {
			err = a.Set(ctx, string(h.Value))
		} else {
			err = ctx.SetExtension(name, string(h.Value))
		}
		if err != nil {
			return fmt.Errorf("invalid binary-mode event: attribute %s: %w", name, err)
		}
	}
	if ct := lastValue(headers, contentTypeHeader); ct != "" {
		if err := ctx.SetDataContentType(ct); err != nil {
			return fmt.Errorf("invalid binary-mode event: content-type: %w", err)
		}
	}
	if err := ctx.Validate(); err != nil {
		return fmt.Errorf("invalid binary-mode event: %w", err)
	}
	return nil
}
