// Package decode presents records written in the Confluent wire format (a zero byte, a four-byte schema ID,
// then Avro, Protobuf or JSON Schema data) to the app as JSON.
//
// A Registry fetches each schema by its ID from a Confluent-compatible schema registry once, compiles it into
// a decoder and keeps a bounded number of them. Decoder is a handler.Middleware: it replaces the value (and,
// when asked, the key) of every delivery in wire format with its JSON form before the deliverers after it see
// it, and leaves every other value alone. The record itself is never changed, so retry and dead-letter copies
// keep the bytes as they were produced.
//
// A value that cannot be decoded (a schema ID the registry does not know, bytes the schema does not fit) is
// answered Permanent with a reason naming the schema ID: it goes to the dead-letter topic. A registry that
// cannot be reached is a dependency outage: the delivery is answered AppUnavailable, which pauses delivery
// without using an attempt, and Decoder.Unavailable tells readiness why.
//
// The JSON follows the conventions of the serializers' own deserializers: Avro unions are their plain value,
// Protobuf uses the proto3 JSON mapping, and the values JSON has no type for are strings: an Avro decimal with
// every digit of its scale ("12.30"), timestamps in RFC 3339 (UTC with a Z, local ones without), dates, times
// of day, UUIDs, and bytes in base64.
package decode
