package decode

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
)

// maxDepth bounds how deeply a value may nest (a recursive Avro schema lets data nest without end), so that
// no record can exhaust the stack.
const maxDepth = 256

// errTruncated is the error for data that ends before the schema says it does.
var errTruncated = errors.New("data ends early")

// avroKind is what an Avro node decodes, its logical type already folded in.
type avroKind uint8

const (
	avroNull avroKind = iota
	avroBoolean
	avroInt
	avroLong
	avroFloat
	avroDouble
	avroBytes
	avroString
	avroRecord
	avroEnum
	avroArray
	avroMap
	avroUnion
	avroFixed
	avroDecimal // bytes or fixed (size > 0)
	avroUUID    // string or fixed (size 16)
	avroDate
	avroTimeMillis
	avroTimeMicros
	avroTimestampMillis
	avroTimestampMicros
	avroLocalTimestampMillis
	avroLocalTimestampMicros
)

// avroNode is a compiled Avro schema: a tree (a graph, for recursive schemas) the decoder walks without
// looking at the schema's JSON again.
type avroNode struct {
	kind     avroKind
	size     int // fixed size; 0 for a decimal on bytes
	scale    int
	fields   []avroField
	symbols  []string
	items    *avroNode   // array items, map values
	branches []*avroNode // union
}

// avroField is one field of a record, its name already encoded as a JSON string.
type avroField struct {
	name []byte // `"name":`
	node *avroNode
}

// avroCodec decodes Avro binary data of one schema to JSON.
type avroCodec struct{ root *avroNode }

// newAvroCodec parses an Avro schema. refs are the schemas it refers to by name, dependencies first.
func newAvroCodec(text string, refs []string) (*avroCodec, error) {
	cache := &avro.SchemaCache{}
	for _, r := range refs {
		if _, err := avro.ParseWithCache(r, "", cache); err != nil {
			return nil, fmt.Errorf("parsing a referenced avro schema: %w", err)
		}
	}
	s, err := avro.ParseWithCache(text, "", cache)
	if err != nil {
		return nil, fmt.Errorf("parsing the avro schema: %w", err)
	}
	root, err := compileAvro(s, map[avro.Schema]*avroNode{})
	if err != nil {
		return nil, err
	}
	return &avroCodec{root: root}, nil
}

// compileAvro turns a parsed schema into nodes; named maps named schemas to their node, so that a recursive
// schema becomes a cycle instead of endless recursion.
func compileAvro(s avro.Schema, named map[avro.Schema]*avroNode) (*avroNode, error) {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	if n, ok := named[s]; ok {
		return n, nil
	}
	switch s := s.(type) {
	case *avro.NullSchema:
		return &avroNode{kind: avroNull}, nil
	case *avro.PrimitiveSchema:
		return compilePrimitive(s)
	case *avro.RecordSchema:
		n := &avroNode{kind: avroRecord}
		named[s] = n
		for _, f := range s.Fields() {
			fn, err := compileAvro(f.Type(), named)
			if err != nil {
				return nil, err
			}
			name, _ := appendString(nil, []byte(f.Name()))
			n.fields = append(n.fields, avroField{name: append(name, ':'), node: fn})
		}
		return n, nil
	case *avro.EnumSchema:
		n := &avroNode{kind: avroEnum, symbols: s.Symbols()}
		named[s] = n
		return n, nil
	case *avro.FixedSchema:
		n := &avroNode{kind: avroFixed, size: s.Size()}
		switch l := s.Logical().(type) {
		case *avro.DecimalLogicalSchema:
			n.kind, n.scale = avroDecimal, l.Scale()
		case nil:
		default:
			if l.Type() == avro.UUID && s.Size() == 16 {
				n.kind = avroUUID
			}
		}
		named[s] = n
		return n, nil
	case *avro.ArraySchema:
		items, err := compileAvro(s.Items(), named)
		if err != nil {
			return nil, err
		}
		return &avroNode{kind: avroArray, items: items}, nil
	case *avro.MapSchema:
		values, err := compileAvro(s.Values(), named)
		if err != nil {
			return nil, err
		}
		return &avroNode{kind: avroMap, items: values}, nil
	case *avro.UnionSchema:
		n := &avroNode{kind: avroUnion}
		for _, t := range s.Types() {
			b, err := compileAvro(t, named)
			if err != nil {
				return nil, err
			}
			n.branches = append(n.branches, b)
		}
		return n, nil
	}
	return nil, fmt.Errorf("avro schema type %s is not supported", s.Type())
}

func compilePrimitive(s *avro.PrimitiveSchema) (*avroNode, error) {
	n := &avroNode{}
	switch s.Type() {
	case avro.Boolean:
		n.kind = avroBoolean
	case avro.Int:
		n.kind = avroInt
	case avro.Long:
		n.kind = avroLong
	case avro.Float:
		n.kind = avroFloat
	case avro.Double:
		n.kind = avroDouble
	case avro.Bytes:
		n.kind = avroBytes
	case avro.String:
		n.kind = avroString
	default:
		return nil, fmt.Errorf("avro schema type %s is not supported", s.Type())
	}
	l := s.Logical()
	if l == nil {
		return n, nil
	}
	// A logical type on a type it does not annotate is ignored, as the specification asks.
	switch lt := l.Type(); {
	case lt == avro.Decimal && n.kind == avroBytes:
		n.kind, n.scale = avroDecimal, l.(*avro.DecimalLogicalSchema).Scale()
	case lt == avro.UUID && n.kind == avroString:
		n.kind = avroUUID
	case lt == avro.Date && n.kind == avroInt:
		n.kind = avroDate
	case lt == avro.TimeMillis && n.kind == avroInt:
		n.kind = avroTimeMillis
	case lt == avro.TimeMicros && n.kind == avroLong:
		n.kind = avroTimeMicros
	case lt == avro.TimestampMillis && n.kind == avroLong:
		n.kind = avroTimestampMillis
	case lt == avro.TimestampMicros && n.kind == avroLong:
		n.kind = avroTimestampMicros
	case lt == avro.LocalTimestampMillis && n.kind == avroLong:
		n.kind = avroLocalTimestampMillis
	case lt == avro.LocalTimestampMicros && n.kind == avroLong:
		n.kind = avroLocalTimestampMicros
	}
	return n, nil
}

// appendJSON decodes one datum and appends its JSON; the whole payload must be the datum.
func (c *avroCodec) appendJSON(dst, payload []byte) ([]byte, error) {
	r := avroReader{b: payload, items: int64(len(payload)) + zeroSizeItems}
	dst, err := r.value(dst, c.root, 0)
	if err != nil {
		return nil, err
	}
	if len(r.b) > 0 {
		return nil, fmt.Errorf("%d bytes left after the avro datum", len(r.b))
	}
	return dst, nil
}

// avroReader reads Avro binary encoding from a byte slice; every length is checked against what is left.
type avroReader struct {
	b     []byte
	items int64 // array and map items the rest of the datum may still have
}

// zeroSizeItems is how many array or map items of a datum may take no bytes at all (nulls, empty records).
const zeroSizeItems = 1 << 16

func (r *avroReader) long() (int64, error) {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		if n == 0 {
			return 0, errTruncated
		}
		return 0, errors.New("a long overflows 64 bits")
	}
	r.b = r.b[n:]
	return v, nil
}

func (r *avroReader) int() (int32, error) {
	v, err := r.long()
	if err != nil {
		return 0, err
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, fmt.Errorf("an int %d overflows 32 bits", v)
	}
	return int32(v), nil
}

func (r *avroReader) fixed(n int) ([]byte, error) {
	if n > len(r.b) {
		return nil, errTruncated
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b, nil
}

func (r *avroReader) bytes() ([]byte, error) {
	n, err := r.long()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("negative length %d", n)
	}
	if n > int64(len(r.b)) {
		return nil, errTruncated
	}
	return r.fixed(int(n))
}

// blockCount reads the count of the next block of an array or map; a negative count is followed by the
// block's size in bytes, which is not needed here.
func (r *avroReader) blockCount() (int64, error) {
	n, err := r.long()
	if err != nil {
		return 0, err
	}
	if n < 0 {
		if n == math.MinInt64 {
			return 0, errors.New("block count overflows")
		}
		n = -n
		if _, err := r.long(); err != nil {
			return 0, err
		}
	}
	// Every item takes at least one byte, except items of null and of empty records: the items of a datum are
	// bounded by its size and a margin, so that no count makes the loop spin, whatever the items.
	if n > r.items {
		return 0, fmt.Errorf("%d more items than the data can hold", n)
	}
	r.items -= n
	return n, nil
}

func (r *avroReader) value(b []byte, n *avroNode, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxDepth)
	}
	switch n.kind {
	case avroNull:
		return append(b, "null"...), nil
	case avroBoolean:
		v, err := r.fixed(1)
		if err != nil {
			return nil, err
		}
		switch v[0] {
		case 0:
			return append(b, "false"...), nil
		case 1:
			return append(b, "true"...), nil
		}
		return nil, fmt.Errorf("boolean byte %d", v[0])
	case avroInt:
		v, err := r.int()
		return strconv.AppendInt(b, int64(v), 10), err
	case avroLong:
		v, err := r.long()
		return strconv.AppendInt(b, v, 10), err
	case avroFloat:
		v, err := r.fixed(4)
		if err != nil {
			return nil, err
		}
		// Widened to float64 as it is read, the way the Python and Java decoders hand it on.
		return appendFloat(b, float64(math.Float32frombits(binary.LittleEndian.Uint32(v)))), nil
	case avroDouble:
		v, err := r.fixed(8)
		if err != nil {
			return nil, err
		}
		return appendFloat(b, math.Float64frombits(binary.LittleEndian.Uint64(v))), nil
	case avroBytes:
		v, err := r.bytes()
		return appendBase64(b, v), err
	case avroFixed:
		v, err := r.fixed(n.size)
		return appendBase64(b, v), err
	case avroString:
		v, err := r.bytes()
		if err != nil {
			return nil, err
		}
		b, ok := appendString(b, v)
		if !ok {
			return nil, errors.New("a string is not valid UTF-8")
		}
		return b, nil
	case avroRecord:
		b = append(b, '{')
		for i := range n.fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, n.fields[i].name...)
			var err error
			if b, err = r.value(b, n.fields[i].node, depth+1); err != nil {
				return nil, fmt.Errorf("field %s: %w", n.fields[i].name[1:len(n.fields[i].name)-2], err)
			}
		}
		return append(b, '}'), nil
	case avroEnum:
		i, err := r.int()
		if err != nil {
			return nil, err
		}
		if i < 0 || int(i) >= len(n.symbols) {
			return nil, fmt.Errorf("enum index %d out of %d symbols", i, len(n.symbols))
		}
		b, _ = appendString(b, []byte(n.symbols[i]))
		return b, nil
	case avroArray, avroMap:
		return r.collection(b, n, depth)
	case avroUnion:
		i, err := r.long()
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(n.branches)) {
			return nil, fmt.Errorf("union branch %d out of %d", i, len(n.branches))
		}
		return r.value(b, n.branches[i], depth+1)
	}
	return r.logical(b, n)
}

// collection decodes an array or a map, both a series of blocks ending with an empty one.
func (r *avroReader) collection(b []byte, n *avroNode, depth int) ([]byte, error) {
	open, closing := byte('['), byte(']')
	if n.kind == avroMap {
		open, closing = '{', '}'
	}
	b = append(b, open)
	first := true
	for {
		count, err := r.blockCount()
		if err != nil {
			return nil, err
		}
		if count == 0 {
			return append(b, closing), nil
		}
		for ; count > 0; count-- {
			if !first {
				b = append(b, ',')
			}
			first = false
			if n.kind == avroMap {
				k, err := r.bytes()
				if err != nil {
					return nil, err
				}
				var ok bool
				if b, ok = appendString(b, k); !ok {
					return nil, errors.New("a map key is not valid UTF-8")
				}
				b = append(b, ':')
			}
			if b, err = r.value(b, n.items, depth+1); err != nil {
				return nil, err
			}
			if len(r.b) == 0 && count > 1 {
				return nil, errTruncated
			}
		}
	}
}

// logical decodes the logical types.
func (r *avroReader) logical(b []byte, n *avroNode) ([]byte, error) {
	switch n.kind {
	case avroDecimal:
		var v []byte
		var err error
		if n.size > 0 {
			v, err = r.fixed(n.size)
		} else {
			v, err = r.bytes()
		}
		if err != nil {
			return nil, err
		}
		return appendDecimal(b, v, n.scale), nil
	case avroUUID:
		if n.size == 16 {
			v, err := r.fixed(16)
			if err != nil {
				return nil, err
			}
			return appendUUID(b, v), nil
		}
		v, err := r.bytes()
		if err != nil {
			return nil, err
		}
		u, err := parseUUID(string(v))
		if err != nil {
			return nil, err
		}
		return appendUUID(b, u), nil
	case avroDate:
		v, err := r.int()
		if err != nil {
			return nil, err
		}
		return appendTime(b, time.Unix(int64(v)*86400, 0).UTC(), withDate), nil
	case avroTimeMillis, avroTimeMicros:
		var v int64
		var err error
		unit := time.Microsecond
		if n.kind == avroTimeMillis {
			var i int32
			i, err = r.int()
			v, unit = int64(i), time.Millisecond
		} else {
			v, err = r.long()
		}
		if err != nil {
			return nil, err
		}
		if v < 0 || v >= int64(24*time.Hour/unit) {
			return nil, fmt.Errorf("time of day %d is outside one day", v)
		}
		return appendTime(b, time.Unix(0, v*int64(unit)).UTC(), withClock), nil
	}
	v, err := r.long()
	if err != nil {
		return nil, err
	}
	var t time.Time
	switch n.kind {
	case avroTimestampMillis, avroLocalTimestampMillis:
		t = time.UnixMilli(v).UTC()
	default:
		t = time.UnixMicro(v).UTC()
	}
	if n.kind == avroLocalTimestampMillis || n.kind == avroLocalTimestampMicros {
		return appendTime(b, t, withDate|withClock), nil
	}
	return appendTime(b, t, withDate|withClock|withZ), nil
}

// Parts of a time that appendTime writes.
const (
	withDate = 1 << iota
	withClock
	withZ
)

// appendTime writes t as a JSON string: the date (2006-01-02), the time of day (15:04:05 and a fraction
// without trailing zeros, none when zero), or both joined by T, with a Z for UTC instants. It is the layout
// "2006-01-02T15:04:05.999999999Z07:00" written by hand: time.Format interprets its layout on every call,
// which costs more than the rest of a record.
func appendTime(b []byte, t time.Time, parts int) []byte {
	b = append(b, '"')
	if parts&withDate != 0 {
		y, m, d := t.Date()
		if y < 0 || y > 9999 {
			b = t.AppendFormat(b, "2006") // outside four digits: what the standard library writes
		} else {
			b = appendDigits(b, y, 4)
		}
		b = append(b, '-')
		b = appendDigits(b, int(m), 2)
		b = append(b, '-')
		b = appendDigits(b, d, 2)
		if parts&withClock != 0 {
			b = append(b, 'T')
		}
	}
	if parts&withClock != 0 {
		h, mi, sec := t.Clock()
		b = appendDigits(b, h, 2)
		b = append(b, ':')
		b = appendDigits(b, mi, 2)
		b = append(b, ':')
		b = appendDigits(b, sec, 2)
		if ns := t.Nanosecond(); ns != 0 {
			digits := 9
			for ns%10 == 0 {
				ns /= 10
				digits--
			}
			b = append(b, '.')
			b = appendDigits(b, ns, digits)
		}
	}
	if parts&withZ != 0 {
		b = append(b, 'Z')
	}
	return append(b, '"')
}

// appendDigits appends v (not negative) in decimal, zero-padded to width digits.
func appendDigits(b []byte, v, width int) []byte {
	var buf [20]byte
	i := len(buf)
	for v >= 10 || width > 1 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		width--
	}
	i--
	buf[i] = byte('0' + v)
	return append(b, buf[i:]...)
}

func appendBase64(b, v []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// appendDecimal appends the two's-complement big-endian unscaled value v with scale digits after the point,
// as a JSON string, every digit of the scale kept ("12.30").
func appendDecimal(b, v []byte, scale int) []byte {
	var digits string
	if len(v) <= 8 {
		// Most decimals fit 64 bits: sign-extend the bytes into an int64 instead of a big.Int.
		var n int64
		if len(v) > 0 && v[0]&0x80 != 0 {
			n = -1
		}
		for _, c := range v {
			n = n<<8 | int64(c)
		}
		digits = strconv.FormatInt(n, 10)
	} else {
		n := new(big.Int).SetBytes(v)
		if v[0]&0x80 != 0 {
			n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(v))))
		}
		digits = n.Text(10)
	}
	neg := strings.HasPrefix(digits, "-")
	digits = strings.TrimPrefix(digits, "-")
	b = append(b, '"')
	if neg {
		b = append(b, '-')
	}
	switch {
	case scale <= 0:
		b = append(b, digits...)
		for range -scale {
			b = append(b, '0')
		}
	case len(digits) > scale:
		b = append(b, digits[:len(digits)-scale]...)
		b = append(b, '.')
		b = append(b, digits[len(digits)-scale:]...)
	default:
		b = append(b, "0."...)
		for range scale - len(digits) {
			b = append(b, '0')
		}
		b = append(b, digits...)
	}
	return append(b, '"')
}

// parseUUID reads a UUID in the forms Python's uuid.UUID accepts: with or without hyphens, braces or a
// urn:uuid: prefix.
func parseUUID(s string) ([]byte, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "urn:"), "uuid:")
	t = strings.Trim(t, "{}")
	t = strings.ReplaceAll(t, "-", "")
	u, err := hex.DecodeString(t)
	if err != nil || len(u) != 16 {
		return nil, fmt.Errorf("%q is not a UUID", truncate(s, 40))
	}
	return u, nil
}

func appendUUID(b, u []byte) []byte {
	b = append(b, '"')
	b = hex.AppendEncode(b, u[:4])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[4:6])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[6:8])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[8:10])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[10:])
	return append(b, '"')
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
