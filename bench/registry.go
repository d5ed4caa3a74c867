package main

import (
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// avroSchemaID is the ID of benchOrderSchema in the run's registry.
const avroSchemaID = 1

// benchOrderSchema is the Avro schema of the decoded run's values: an ID, two logical types and padding.
const benchOrderSchema = `{"type":"record","name":"Order","namespace":"bench","fields":[
  {"name":"order","type":"long"},
  {"name":"placed","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
  {"name":"pad","type":"string"}]}`

// startRegistry starts an in-memory schema registry holding benchOrderSchema for the topic's values.
func startRegistry() *srfake.Registry {
	r := srfake.New()
	r.SeedSchema(topic+"-value", 1, avroSchemaID, sr.Schema{Schema: benchOrderSchema, Type: sr.TypeAvro})
	return r
}

// avroValue builds record i as benchOrderSchema data in Confluent wire format, recordBytes long.
func avroValue(i int) []byte {
	b := make([]byte, 5, recordBytes)
	binary.BigEndian.PutUint32(b[1:], avroSchemaID)
	b = binary.AppendVarint(b, int64(i))
	b = binary.AppendVarint(b, 1714979289120+int64(i))
	amount := []byte(strconv.Itoa(1000 + i%9000)) // the unscaled value's bytes, small and positive
	b = binary.AppendVarint(b, int64(len(amount)))
	b = append(b, amount...)
	pad := max(0, recordBytes-len(b)-2)
	b = binary.AppendVarint(b, int64(pad))
	return append(b, strings.Repeat("x", pad)...)
}
