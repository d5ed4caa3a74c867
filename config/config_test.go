package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func base() []string {
	return []string{
		"SIDECAR_KAFKA_BROKERS=127.0.0.1:9092,kafka-1:9092",
		"SIDECAR_KAFKA_TOPICS=orders, payments",
		"SIDECAR_KAFKA_GROUP=billing",
		"SIDECAR_REDIS_URL=redis://127.0.0.1:6379/0",
	}
}

func TestDefaults(t *testing.T) {
	c, err := LoadFrom(base())
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"topics trimmed", strings.Join(c.KafkaTopics, "|"), "orders|payments"},
		{"session timeout", c.KafkaSessionTimeout, 45 * time.Second},
		{"start offset", c.KafkaStartOffset, "earliest"},
		{"app url", c.AppURL, "http://127.0.0.1:8080/"},
		{"app timeout", c.AppTimeout, 30 * time.Second},
		{"ordering", c.Ordering, OrderingKey},
		{"max in flight", c.MaxInFlight, 64},
		{"dedup", c.Dedup, DedupRedis},
		{"dedup ttl", c.DedupTTL, 168 * time.Hour},
		{"attempts in place", c.RetryAttemptsPlace, 3},
		{"retry delays", len(c.RetryDelays), 3},
		{"admin addr", c.AdminAddr, ":9464"},
		{"log", c.LogLevel + "/" + c.LogFormat, "info/json"},
		{"shutdown timeout", c.ShutdownTimeout, 30 * time.Second},
		{"create topics", c.CreateTopics, true},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestEmptyRetryDelaysMeansNoRetryTopics(t *testing.T) {
	c, err := LoadFrom(append(base(), "SIDECAR_RETRY_DELAYS="))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.RetryDelays) != 0 {
		t.Fatalf("SIDECAR_RETRY_DELAYS= gave %v, want no retry topics", c.RetryDelays)
	}
}

func TestInvalidValuesNameTheirVariable(t *testing.T) {
	tests := []struct {
		env  string
		want string
	}{
		{"SIDECAR_KAFKA_BROKERS=localhost", "SIDECAR_KAFKA_BROKERS"},
		{"SIDECAR_KAFKA_TOPICS=bad topic", "SIDECAR_KAFKA_TOPICS"},
		{"SIDECAR_KAFKA_GROUP=", "SIDECAR_KAFKA_GROUP"},
		{"SIDECAR_KAFKA_SESSION_TIMEOUT=1s", "SIDECAR_KAFKA_SESSION_TIMEOUT"},
		{"SIDECAR_KAFKA_START_OFFSET=middle", "SIDECAR_KAFKA_START_OFFSET"},
		{"SIDECAR_APP_URL=ftp://x/", "SIDECAR_APP_URL"},
		{"SIDECAR_APP_TIMEOUT=soon", "SIDECAR_APP_TIMEOUT"},
		{"SIDECAR_APP_TIMEOUT=", "SIDECAR_APP_TIMEOUT"},
		{"SIDECAR_APP_TIMEOUT=-1s", "SIDECAR_APP_TIMEOUT"},
		{"SIDECAR_ORDERING=random", "SIDECAR_ORDERING"},
		{"SIDECAR_MAX_IN_FLIGHT=0", "SIDECAR_MAX_IN_FLIGHT"},
		{"SIDECAR_MAX_IN_FLIGHT=lots", "SIDECAR_MAX_IN_FLIGHT"},
		{"SIDECAR_DEDUP=sometimes", "SIDECAR_DEDUP"},
		{"SIDECAR_REDIS_URL=http://x", "SIDECAR_REDIS_URL"},
		{"SIDECAR_DEDUP_TTL=0s", "SIDECAR_DEDUP_TTL"},
		{"SIDECAR_RETRY_ATTEMPTS_IN_PLACE=0", "SIDECAR_RETRY_ATTEMPTS_IN_PLACE"},
		{"SIDECAR_RETRY_DELAYS=10s,often", "SIDECAR_RETRY_DELAYS"},
		{"SIDECAR_DLQ_TOPIC=dead letters", "SIDECAR_DLQ_TOPIC"},
		{"SIDECAR_ADMIN_ADDR=9464", "SIDECAR_ADMIN_ADDR"},
		{"SIDECAR_LOG_LEVEL=loud", "SIDECAR_LOG_LEVEL"},
		{"SIDECAR_LOG_FORMAT=xml", "SIDECAR_LOG_FORMAT"},
		{"SIDECAR_SHUTDOWN_TIMEOUT=0s", "SIDECAR_SHUTDOWN_TIMEOUT"},
		{"SIDECAR_CREATE_TOPICS=maybe", "SIDECAR_CREATE_TOPICS"},
		{"SIDECAR_KAFKA_SASL_MECHANISM=GSSAPI", "SIDECAR_KAFKA_SASL_MECHANISM"},
		{"SIDECAR_KAFKA_SASL_MECHANISM=PLAIN", "SIDECAR_KAFKA_SASL_PASSWORD"},
		{"SIDECAR_KAFKA_TLS_CA_FILE=/nonexistent/ca.pem", "SIDECAR_KAFKA_TLS_CA_FILE"},
		{"SIDECAR_DELIVERY=stream", "SIDECAR_DELIVERY"},
		{"SIDECAR_CLOUDEVENTS=sometimes", "SIDECAR_CLOUDEVENTS"},
		{"SIDECAR_CLOUDEVENTS_TYPE=", "SIDECAR_CLOUDEVENTS_TYPE"},
		{"SIDECAR_CLOUDEVENTS_TYPE=a\tb", "SIDECAR_CLOUDEVENTS_TYPE"},
		{"SIDECAR_KAFKA_GROUP_PROTOCOL=next", "SIDECAR_KAFKA_GROUP_PROTOCOL"},
		{"OTEL_TRACES_EXPORTER=jaeger", "OTEL_TRACES_EXPORTER"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL=http/json", "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"OTEL_TRACES_SAMPLER=sometimes", "OTEL_TRACES_SAMPLER"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			env := base()
			key := strings.SplitN(tt.env, "=", 2)[0]
			filtered := env[:0]
			for _, e := range env {
				if !strings.HasPrefix(e, key+"=") {
					filtered = append(filtered, e)
				}
			}
			_, err := LoadFrom(append(filtered, tt.env))
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("want a *config.Error, got %v", err)
			}
			if !strings.HasPrefix(cerr.Problems[0], tt.want+":") {
				t.Fatalf("problems %q, want the first naming %s", cerr.Problems, tt.want)
			}
		})
	}
}

func TestEmptyEnvironmentNamesEveryRequiredVariable(t *testing.T) {
	_, err := LoadFrom(nil)
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("want *config.Error, got %v", err)
	}
	msg := cerr.Error()
	for _, v := range []string{"SIDECAR_KAFKA_BROKERS", "SIDECAR_KAFKA_TOPICS", "SIDECAR_KAFKA_GROUP", "SIDECAR_REDIS_URL"} {
		if !strings.Contains(msg, v) {
			t.Errorf("message does not name %s:\n%s", v, msg)
		}
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	c, err := LoadFrom(append(base()[:3], "SIDECAR_REDIS_URL=redis://:hunter2@127.0.0.1:6379", "SIDECAR_KAFKA_SASL_MECHANISM=PLAIN",
		"SIDECAR_KAFKA_SASL_USERNAME=u", "SIDECAR_KAFKA_SASL_PASSWORD=s3cr3t-pw"))
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := strings.ToLower(sprintf(format, c))
		if strings.Contains(out, "hunter2") || strings.Contains(out, "s3cr3t-pw") {
			t.Fatalf("%s printed a secret: %s", format, out)
		}
	}
	if c.RedisURL.Reveal() != "redis://:hunter2@127.0.0.1:6379" {
		t.Fatal("Reveal must return the secret itself")
	}
}

func TestBadRedisURLErrorHidesPassword(t *testing.T) {
	_, err := LoadFrom(append(base()[:3], "SIDECAR_REDIS_URL=http://:hunter2@x"))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("want an error without the password, got %v", err)
	}
}

func FuzzLoadFrom(f *testing.F) {
	f.Add("SIDECAR_RETRY_DELAYS", "1s,2m")
	f.Add("SIDECAR_KAFKA_BROKERS", "a:1,,b")
	f.Add("SIDECAR_APP_URL", "http://[::1]:80/{topic}")
	f.Fuzz(func(t *testing.T, key, value string) {
		env := append(base(), key+"="+value)
		c, err := LoadFrom(env)
		if err == nil && c == nil {
			t.Fatal("nil config without an error")
		}
		if err != nil {
			var cerr *Error
			if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
		}
	})
}

// TestEffective: the configuration in force, as it would be written in the environment, with secrets redacted.
func TestEffective(t *testing.T) {
	cfg, err := LoadFrom([]string{
		"SIDECAR_KAFKA_BROKERS=k1:9092,k2:9092", "SIDECAR_KAFKA_TOPICS=orders", "SIDECAR_KAFKA_GROUP=g",
		"SIDECAR_REDIS_URL=redis://:pw-71@cache:6379/0", "SIDECAR_RETRY_DELAYS=10s,1m30s",
		"SIDECAR_KAFKA_SASL_MECHANISM=PLAIN", "SIDECAR_KAFKA_SASL_USERNAME=u", "SIDECAR_KAFKA_SASL_PASSWORD=pw-72",
	})
	if err != nil {
		t.Fatal(err)
	}
	eff := cfg.Effective()
	for key, want := range map[string]string{
		"SIDECAR_KAFKA_BROKERS":       "k1:9092,k2:9092",
		"SIDECAR_RETRY_DELAYS":        "10s,1m30s",
		"SIDECAR_STALL_TIMEOUT":       "5m0s",
		"SIDECAR_MAX_IN_FLIGHT":       "64",
		"SIDECAR_CREATE_TOPICS":       "true",
		"SIDECAR_KAFKA_SASL_PASSWORD": "[redacted]",
		"SIDECAR_REDIS_URL":           "[redacted]",
		"SIDECAR_ID_HEADER":           "",
	} {
		if got, ok := eff[key]; !ok || got != want {
			t.Errorf("%s = %q (present %v), want %q", key, got, ok, want)
		}
	}
	if len(eff) != len(Fields()) {
		t.Errorf("%d variables, want every one of the %d", len(eff), len(Fields()))
	}
}

// TestStallTimeout: 0 turns the check off; otherwise it must exceed the app timeout, or one slow delivery would
// restart the sidecar.
func TestStallTimeout(t *testing.T) {
	base := []string{"SIDECAR_KAFKA_BROKERS=k:9092", "SIDECAR_KAFKA_TOPICS=t", "SIDECAR_KAFKA_GROUP=g", "SIDECAR_DEDUP=off"}
	for _, tt := range []struct {
		env []string
		ok  bool
	}{
		{[]string{"SIDECAR_STALL_TIMEOUT=0"}, true},
		{[]string{"SIDECAR_STALL_TIMEOUT=31s"}, true},
		{[]string{"SIDECAR_STALL_TIMEOUT=30s"}, false},
		{[]string{"SIDECAR_STALL_TIMEOUT=3s", "SIDECAR_APP_TIMEOUT=2s"}, true},
		{[]string{"SIDECAR_STALL_TIMEOUT=-1s"}, false},
	} {
		_, err := LoadFrom(append(append([]string{}, base...), tt.env...))
		if tt.ok != (err == nil) {
			t.Errorf("%v: err %v, want ok=%v", tt.env, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "SIDECAR_STALL_TIMEOUT") {
			t.Errorf("%v: error %q does not name SIDECAR_STALL_TIMEOUT", tt.env, err)
		}
	}
}

func TestDecodeSettings(t *testing.T) {
	pw := t.TempDir() + "/pw"
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadFrom(append(base(), "SIDECAR_DECODE=json", "SIDECAR_DECODE_KEYS=true",
		"SIDECAR_SCHEMA_REGISTRY_URL=https://registry:8081/apis/ccompat/v7",
		"SIDECAR_SCHEMA_REGISTRY_USERNAME=reader", "SIDECAR_SCHEMA_REGISTRY_PASSWORD_FILE="+pw))
	if err != nil {
		t.Fatal(err)
	}
	if c.Decode != DecodeJSON || !c.DecodeKeys || c.SchemaRegistryPassword.Reveal() != "s3cret" {
		t.Fatalf("got decode %q keys %v password %q", c.Decode, c.DecodeKeys, c.SchemaRegistryPassword.Reveal())
	}
	off, err := LoadFrom(base())
	if err != nil {
		t.Fatal(err)
	}
	if off.Decode != DecodeOff || off.DecodeKeys {
		t.Fatalf("defaults: decode %q keys %v, want off and false", off.Decode, off.DecodeKeys)
	}

	tests := []struct {
		env  []string
		want string
	}{
		{[]string{"SIDECAR_DECODE=avro"}, "SIDECAR_DECODE"},
		{[]string{"SIDECAR_DECODE=json"}, "SIDECAR_SCHEMA_REGISTRY_URL"},
		{[]string{"SIDECAR_DECODE=json", "SIDECAR_SCHEMA_REGISTRY_URL=registry:8081"}, "SIDECAR_SCHEMA_REGISTRY_URL"},
		{[]string{"SIDECAR_DECODE=json", "SIDECAR_SCHEMA_REGISTRY_URL=http://u:p@registry:8081"}, "SIDECAR_SCHEMA_REGISTRY_URL"},
		{[]string{"SIDECAR_DECODE_KEYS=true"}, "SIDECAR_DECODE_KEYS"},
		{[]string{"SIDECAR_DECODE_KEYS=maybe"}, "SIDECAR_DECODE_KEYS"},
		{[]string{"SIDECAR_SCHEMA_REGISTRY_USERNAME=reader"}, "SIDECAR_SCHEMA_REGISTRY_USERNAME"},
		{[]string{"SIDECAR_SCHEMA_REGISTRY_TLS_CA_FILE=/nonexistent/ca.pem"}, "SIDECAR_SCHEMA_REGISTRY_TLS_CA_FILE"},
	}
	for _, tt := range tests {
		_, err := LoadFrom(append(base(), tt.env...))
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want+":") {
			t.Errorf("%v: got %v, want an error naming %s", tt.env, err, tt.want)
		}
	}
}

func TestOTelSamplerArgNamesItself(t *testing.T) {
	for _, tt := range []struct {
		env  []string
		want bool
	}{
		{[]string{"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=1.5"}, false},
		{[]string{"OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=half"}, false},
		{[]string{"OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.01", "OTEL_TRACES_EXPORTER=otlp"}, true},
	} {
		_, err := LoadFrom(append(base(), tt.env...))
		if (err == nil) != tt.want {
			t.Errorf("%v: err %v, want ok=%v", tt.env, err, tt.want)
		}
		if err != nil && !strings.Contains(err.Error(), "OTEL_TRACES_SAMPLER_ARG:") {
			t.Errorf("%v: %v does not name OTEL_TRACES_SAMPLER_ARG", tt.env, err)
		}
	}
}
