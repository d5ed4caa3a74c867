package decode

import (
	"bytes"
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/linker"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// maxIndexLength bounds the message index of a Protobuf record: a path through nested message types.
const maxIndexLength = 32

// protoCodec decodes Protobuf messages of the types one registered file declares.
type protoCodec struct {
	file     protoreflect.FileDescriptor
	resolver linker.Resolver
}

// builtin holds the files Confluent's serializers let a schema import without a reference, beside the
// well-known types: confluent/meta.proto (field and message options) and confluent/type/decimal.proto.
//
//go:embed builtin
var builtin embed.FS

// rootFile is the name the registered schema is compiled under; its imports keep their own names.
const rootFile = "kafka-sidecar/registered-schema.proto"

// newProtoCodec compiles a registered Protobuf schema. The schema and each of its references (deps, by the
// name they are imported with) is either .proto source or, as some serializers register it, a serialized
// FileDescriptorProto in base64. Well-known types need no reference.
func newProtoCodec(text string, deps map[string]string) (*protoCodec, error) {
	sources := make(map[string]string, len(deps)+1)
	for name, s := range deps {
		sources[name] = s
	}
	sources[rootFile] = text
	resolver := protocompile.ResolverFunc(func(path string) (protocompile.SearchResult, error) {
		s, ok := sources[path]
		if !ok {
			b, err := builtin.ReadFile("builtin/" + path)
			if err != nil {
				return protocompile.SearchResult{}, fmt.Errorf("%s is neither a reference of the schema nor a well-known type", path)
			}
			s = string(b)
		}
		if fd := serializedDescriptor(s); fd != nil {
			fd.Name = proto.String(path)
			return protocompile.SearchResult{Proto: fd}, nil
		}
		return protocompile.SearchResult{Source: strings.NewReader(s)}, nil
	})
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(resolver)}
	files, err := c.Compile(context.Background(), rootFile)
	if err != nil {
		return nil, fmt.Errorf("compiling the protobuf schema: %w", err)
	}
	f := files[0]
	if f.Messages().Len() == 0 {
		return nil, errors.New("the protobuf schema declares no message")
	}
	return &protoCodec{file: f, resolver: linker.ResolverFromFile(f)}, nil
}

// serializedDescriptor returns the FileDescriptorProto that s encodes in base64, or nil when s is not one
// (.proto source is never valid base64: it has spaces, braces and semicolons).
func serializedDescriptor(s string) *descriptorpb.FileDescriptorProto {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil
	}
	fd := &descriptorpb.FileDescriptorProto{}
	if proto.Unmarshal(raw, fd) != nil {
		return nil
	}
	for _, m := range fd.GetMessageType() {
		fillJSONNames(m)
	}
	return fd
}

// fillJSONNames gives every field without a JSON name the default one. Descriptors as protoc writes them have
// it; those some runtimes serialize do not, and the compiler would take every missing one for the same
// custom name "".
func fillJSONNames(m *descriptorpb.DescriptorProto) {
	for _, f := range m.GetField() {
		if f.GetJsonName() == "" {
			f.JsonName = proto.String(defaultJSONName(f.GetName()))
		}
	}
	for _, n := range m.GetNestedType() {
		fillJSONNames(n)
	}
}

// defaultJSONName is protoc's JSON name of a field: underscores dropped, the letter after each one upper case.
func defaultJSONName(name string) string {
	b := make([]byte, 0, len(name))
	upper := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '_' {
			upper = true
			continue
		}
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		upper = false
		b = append(b, c)
	}
	return string(b)
}

// message finds the message type a record's message index names: a path of indexes, the first into the
// file's top-level messages, each further one into the nested messages of the one before.
func (c *protoCodec) message(index []int) (protoreflect.MessageDescriptor, error) {
	msgs := c.file.Messages()
	var md protoreflect.MessageDescriptor
	for _, i := range index {
		if i < 0 || i >= msgs.Len() {
			return nil, fmt.Errorf("message index %v names no message type of the schema", index)
		}
		md = msgs.Get(i)
		msgs = md.Messages()
	}
	if md == nil {
		return nil, errors.New("empty message index")
	}
	return md, nil
}

// appendJSON reads the message index, then the message, and appends the message in the proto3 JSON mapping,
// compacted.
func (c *protoCodec) appendJSON(dst, payload []byte) ([]byte, error) {
	var header sr.ConfluentHeader
	index, rest, err := header.DecodeIndex(payload, maxIndexLength)
	if err != nil {
		return nil, fmt.Errorf("reading the message index: %w", err)
	}
	md, err := c.message(index)
	if err != nil {
		return nil, err
	}
	m := dynamicpb.NewMessage(md)
	// AllowPartial skips the walks that look for unset proto2 required fields (a quarter of the time): a
	// message that lacks one is still presented, with what it has.
	if err := (proto.UnmarshalOptions{Resolver: c.resolver, RecursionLimit: maxDepth, AllowPartial: true}).Unmarshal(rest, m); err != nil {
		return nil, fmt.Errorf("reading %s: %w", md.FullName(), err)
	}
	out, err := protojson.MarshalOptions{Resolver: c.resolver, AllowPartial: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("writing %s as JSON: %w", md.FullName(), err)
	}
	// protojson varies its spacing on purpose; the app gets the same bytes for the same message.
	buf := bytes.NewBuffer(dst)
	if err := json.Compact(buf, out); err != nil {
		return nil, fmt.Errorf("writing %s as JSON: %w", md.FullName(), err)
	}
	return buf.Bytes(), nil
}

// jsonCodec passes JSON Schema data through: it is JSON already.
type jsonCodec struct{}

func (jsonCodec) appendJSON(dst, payload []byte) ([]byte, error) {
	payload = bytes.TrimSpace(payload)
	if !json.Valid(payload) {
		return nil, errors.New("the data is not valid JSON")
	}
	return append(dst, payload...), nil
}
