package httpapp

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/kafka-sidecar/kafka-sidecar/handler"
)

// eventBatchContentType is the content type of a batch whose records are all CloudEvents: the HTTP protocol
// binding's batched mode, a JSON array of events in the JSON event format.
const eventBatchContentType = "application/cloudevents-batch+json"

// eventHeaderPrefix starts the extra headers that carry a CloudEvent's attributes in HTTP binary mode.
const eventHeaderPrefix = "ce-"

// structuredJSON is the content type of a record that holds a CloudEvent in the JSON event format.
const structuredJSON = "application/cloudevents+json"

// encodeEventBatch writes the batch as a JSON array of CloudEvents when every record is one: presented in
// binary mode (its attributes in ce-* extra headers, set by middleware) or held in structured JSON mode. It
// returns, per record, the event's id, which is what the app's answer names a record by; ok is false, and
// nothing is written, when any record is not a CloudEvent.
func encodeEventBatch(ds []*handler.Delivery) (body []byte, ids []string, ok bool) {
	for _, d := range ds {
		if !isEvent(d) {
			return nil, nil, false
		}
	}
	size := 2
	for _, d := range ds {
		size += 64 + base64.StdEncoding.EncodedLen(len(d.Value))
		for _, x := range d.Extra {
			size += 6 + len(x.Name) + len(x.Value)
		}
	}
	b := make([]byte, 0, size)
	ids = make([]string, len(ds))
	b = append(b, '[')
	for i, d := range ds {
		if i > 0 {
			b = append(b, ',')
		}
		if _, binary := d.ExtraValue(eventHeaderPrefix + "specversion"); binary {
			b, ids[i] = appendBinaryEvent(b, d)
		} else {
			value := bytes.TrimSpace(d.Value)
			b = append(b, value...)
			ids[i] = structuredID(value)
		}
	}
	return append(b, ']'), ids, true
}

// isEvent reports whether d is a CloudEvent the batch can carry in the JSON event format.
func isEvent(d *handler.Delivery) bool {
	if _, ok := d.ExtraValue(eventHeaderPrefix + "specversion"); ok {
		return true
	}
	ct := recordContentType(d)
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	if !strings.EqualFold(string(bytes.TrimSpace(ct)), structuredJSON) {
		return false
	}
	v := bytes.TrimSpace(d.Value)
	return len(v) > 0 && v[0] == '{' && utf8.Valid(v) && json.Valid(v)
}

// structuredID reads the id of an event in the JSON event format, "" when it has none.
func structuredID(value []byte) string {
	var ev struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(value, &ev) // checked valid JSON by isEvent; a missing or odd id is simply ""
	return ev.ID
}

// appendBinaryEvent appends the JSON event format of a delivery presented in binary mode: its ce-* attributes
// (percent-decoded, as the HTTP binding encodes them), datacontenttype, and the value as data when it is
// JSON, else as data_base64. It returns the event's id.
func appendBinaryEvent(b []byte, d *handler.Delivery) ([]byte, string) {
	var id string
	b = append(b, '{')
	first := true
	for _, x := range d.Extra {
		if len(x.Name) <= len(eventHeaderPrefix) || !strings.EqualFold(x.Name[:len(eventHeaderPrefix)], eventHeaderPrefix) {
			continue
		}
		name := strings.ToLower(x.Name[len(eventHeaderPrefix):])
		if name == "datacontenttype" || name == "data" || name == "data_base64" {
			continue // the content type comes from the record, the data from the value
		}
		value := decodeAttribute(x.Value)
		if name == "id" {
			id = value
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, name)
		b = append(b, ':')
		b = appendJSONString(b, value)
	}
	ct := recordContentType(d)
	if len(ct) == 0 {
		ct = []byte(defaultContentType)
	}
	b = append(b, `,"datacontenttype":`...)
	b = appendJSONString(b, ct)
	if isJSONContentType(ct) && utf8.Valid(d.Value) && json.Valid(d.Value) {
		b = append(b, `,"data":`...)
		b = append(b, bytes.TrimSpace(d.Value)...)
	} else {
		b = append(b, `,"data_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, d.Value)
		b = append(b, '"')
	}
	return append(b, '}'), id
}

// decodeAttribute undoes the HTTP binding's percent-encoding of an attribute value; a value that does not
// decode is taken as it is.
func decodeAttribute(v string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	if s, err := url.PathUnescape(v); err == nil && utf8.ValidString(s) {
		return s
	}
	return v
}
