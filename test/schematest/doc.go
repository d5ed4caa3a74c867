// Package schematest proves schema-registry decoding end to end against a real registry: Apicurio Registry
// (its Confluent-compatible API), started by the tests through test/registry/registry.sh, with records written
// by a serializer that is not Go's, Python confluent-kafka's own Avro, Protobuf and JSON Schema serializers.
//
// The registry is started once for the package on a free port unless TEST_SCHEMA_REGISTRY_URL names one.
// The Python serializers come from the test virtualenv that test/deps.sh installs (TEST_PYTHON overrides its
// interpreter). Without Java, Maven or that virtualenv the tests skip, saying what is missing, except under
// CI=true, where they fail.
package schematest
