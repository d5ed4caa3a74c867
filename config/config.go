package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Ordering modes accepted by SIDECAR_ORDERING.
const (
	OrderingPartition = "partition"
	OrderingKey       = "key"
	OrderingUnordered = "unordered"
)

// Dedup backends accepted by SIDECAR_DEDUP.
const (
	DedupRedis  = "redis"
	DedupMemory = "memory"
	DedupOff    = "off"
)

// Delivery modes accepted by SIDECAR_DELIVERY.
const (
	DeliverySingle = "single"
	DeliveryBatch  = "batch"
)

// Decode modes accepted by SIDECAR_DECODE.
const (
	DecodeOff  = "off"
	DecodeJSON = "json"
)

// Group protocols accepted by SIDECAR_KAFKA_GROUP_PROTOCOL.
const (
	// GroupProtocolClassic is the client-driven protocol (JoinGroup / SyncGroup, cooperative-sticky).
	GroupProtocolClassic = "classic"
	// GroupProtocolConsumer is KIP-848's protocol: the group coordinator assigns partitions.
	GroupProtocolConsumer = "consumer"
)

// CloudEvents modes accepted by SIDECAR_CLOUDEVENTS.
const (
	CloudEventsAuto = "auto"
	CloudEventsWrap = "wrap"
	CloudEventsOff  = "off"
)

// Config is the whole sidecar configuration, read from SIDECAR_* environment variables.
//
// Each field's `env` tag names its variable, `envDefault` its default and `help` the line that
// `kafka-sidecar --help` prints; Help is generated from these tags so the two never drift apart.
// A field tagged `empty:"ok"` gives an explicitly empty value a meaning of its own; for every other field with a
// default, a variable that is set but empty is rejected rather than silently replaced by the default.
type Config struct {
	KafkaBrokers        []string      `env:"SIDECAR_KAFKA_BROKERS,required" help:"comma-separated host:port seed brokers"`
	KafkaTopics         []string      `env:"SIDECAR_KAFKA_TOPICS,required" help:"comma-separated source topics"`
	KafkaGroup          string        `env:"SIDECAR_KAFKA_GROUP,required" help:"consumer group id"`
	KafkaInstanceID     string        `env:"SIDECAR_KAFKA_INSTANCE_ID" help:"static group membership id (the pod name); a restart shorter than the session timeout keeps the partitions"`
	KafkaSessionTimeout time.Duration `env:"SIDECAR_KAFKA_SESSION_TIMEOUT" envDefault:"45s" help:"group session timeout"`
	KafkaStartOffset    string        `env:"SIDECAR_KAFKA_START_OFFSET" envDefault:"earliest" help:"earliest or latest, for partitions with no committed offset"`
	KafkaGroupProtocol  string        `env:"SIDECAR_KAFKA_GROUP_PROTOCOL" envDefault:"classic" help:"classic, or consumer (KIP-848: the brokers assign partitions, with no stop-the-world rebalance; Kafka 4.0 or later)"`

	KafkaSASLMechanism    string `env:"SIDECAR_KAFKA_SASL_MECHANISM" help:"PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty disables SASL"`
	KafkaSASLUsername     string `env:"SIDECAR_KAFKA_SASL_USERNAME" help:"SASL user name"`
	KafkaSASLPassword     Secret `env:"SIDECAR_KAFKA_SASL_PASSWORD" help:"SASL password (prefer SIDECAR_KAFKA_SASL_PASSWORD_FILE)"`
	KafkaSASLPasswordFile string `env:"SIDECAR_KAFKA_SASL_PASSWORD_FILE" help:"file holding the SASL password"`
	KafkaTLSEnabled       bool   `env:"SIDECAR_KAFKA_TLS_ENABLED" envDefault:"false" help:"connect to the brokers over TLS"`
	KafkaTLSCAFile        string `env:"SIDECAR_KAFKA_TLS_CA_FILE" help:"PEM CA bundle for the brokers (system roots when empty)"`
	KafkaTLSCertFile      string `env:"SIDECAR_KAFKA_TLS_CERT_FILE" help:"PEM client certificate for mutual TLS"`
	KafkaTLSKeyFile       string `env:"SIDECAR_KAFKA_TLS_KEY_FILE" help:"PEM client key for mutual TLS"`
	KafkaTLSServerName    string `env:"SIDECAR_KAFKA_TLS_SERVER_NAME" help:"server name to verify (the broker host when empty)"`
	KafkaTLSMinVersion    string `env:"SIDECAR_KAFKA_TLS_MIN_VERSION" envDefault:"1.2" help:"lowest TLS version: 1.2 or 1.3"`

	AppURL              string        `env:"SIDECAR_APP_URL" envDefault:"http://127.0.0.1:8080/" help:"where records are POSTed; {topic} in the path is replaced by the source topic"`
	AppTimeout          time.Duration `env:"SIDECAR_APP_TIMEOUT" envDefault:"30s" help:"timeout of one delivery"`
	AppHealthURL        string        `env:"SIDECAR_APP_HEALTH_URL" help:"when set, polled; delivery pauses while it does not answer 2xx"`
	AppAuthTokenFile    string        `env:"SIDECAR_APP_AUTH_TOKEN_FILE" help:"file holding a token sent as Authorization: Bearer (re-read when it changes)"`
	AppTLSCAFile        string        `env:"SIDECAR_APP_TLS_CA_FILE" help:"PEM CA bundle for an https app URL"`
	AppTLSCertFile      string        `env:"SIDECAR_APP_TLS_CERT_FILE" help:"PEM client certificate for mutual TLS to the app"`
	AppTLSKeyFile       string        `env:"SIDECAR_APP_TLS_KEY_FILE" help:"PEM client key for mutual TLS to the app"`
	AppBackoffMax       time.Duration `env:"SIDECAR_APP_BACKOFF_MAX" envDefault:"10s" help:"longest pause while the app is unavailable"`
	AppMaxResponseBytes int64         `env:"SIDECAR_APP_MAX_RESPONSE_BYTES" envDefault:"1048576" help:"bytes of an app answer that are read; the rest is discarded"`

	Ordering           string        `env:"SIDECAR_ORDERING" envDefault:"key" help:"partition (one request at a time per partition), key (one in flight per key, same-key records in offset order) or unordered"`
	MaxInFlight        int           `env:"SIDECAR_MAX_IN_FLIGHT" envDefault:"64" help:"records delivered and not yet marked done, per sidecar: the requests under way at once, and the most a crash can redeliver (batch mode: records in batches under way)"`
	MaxBufferedRecords int           `env:"SIDECAR_MAX_BUFFERED_RECORDS" envDefault:"5000" help:"records fetched but not done, per sidecar; fetching pauses above it"`
	MaxBufferedBytes   int64         `env:"SIDECAR_MAX_BUFFERED_BYTES" envDefault:"8388608" help:"bytes of records fetched but not done; fetching pauses above it"`
	MaxRecordBytes     int64         `env:"SIDECAR_MAX_RECORD_BYTES" envDefault:"10485760" help:"larger records (key + value + headers) go to the dead-letter topic unsent"`
	CommitInterval     time.Duration `env:"SIDECAR_COMMIT_INTERVAL" envDefault:"1s" help:"how often done offsets are committed (also on revoke and shutdown)"`
	RevokeTimeout      time.Duration `env:"SIDECAR_REVOKE_TIMEOUT" envDefault:"15s" help:"how long in-flight deliveries of a revoked partition may run on before they are cancelled"`
	ShutdownTimeout    time.Duration `env:"SIDECAR_SHUTDOWN_TIMEOUT" envDefault:"30s" help:"drain deadline on SIGTERM"`
	StallTimeout       time.Duration `env:"SIDECAR_STALL_TIMEOUT" envDefault:"5m" help:"/healthz fails when records are in flight, delivery is not paused, and none has finished for this long (0 disables); above SIDECAR_APP_TIMEOUT"`

	Delivery        string        `env:"SIDECAR_DELIVERY" envDefault:"single" help:"single (one record per request) or batch (a JSON document of records per request)"`
	BatchMaxRecords int           `env:"SIDECAR_BATCH_MAX_RECORDS" envDefault:"100" help:"batch mode: records per request at most"`
	BatchMaxWait    time.Duration `env:"SIDECAR_BATCH_MAX_WAIT" envDefault:"5ms" help:"batch mode: how long a batch waits to fill"`

	SchemaRegistryURL          string `env:"SIDECAR_SCHEMA_REGISTRY_URL" help:"a Confluent-compatible schema registry (its API base, e.g. http://registry:8081), for SIDECAR_DECODE"`
	SchemaRegistryUsername     string `env:"SIDECAR_SCHEMA_REGISTRY_USERNAME" help:"basic-auth user for the schema registry"`
	SchemaRegistryPasswordFile string `env:"SIDECAR_SCHEMA_REGISTRY_PASSWORD_FILE" help:"file holding the schema registry basic-auth password"`
	SchemaRegistryTLSCAFile    string `env:"SIDECAR_SCHEMA_REGISTRY_TLS_CA_FILE" help:"PEM CA bundle for an https schema registry (system roots when empty)"`
	Decode                     string `env:"SIDECAR_DECODE" envDefault:"off" help:"off, or json: values in Confluent wire format (Avro, Protobuf, JSON Schema) reach the app as JSON"`
	DecodeKeys                 bool   `env:"SIDECAR_DECODE_KEYS" envDefault:"false" help:"with SIDECAR_DECODE=json, keys in wire format are decoded too (Kafka-Key holds the JSON)"`
	// SchemaRegistryPassword is read from SIDECAR_SCHEMA_REGISTRY_PASSWORD_FILE.
	SchemaRegistryPassword Secret

	IDHeader string `env:"SIDECAR_ID_HEADER" help:"record header holding the message ID; without it (or when a record lacks it) a CloudEvent's ID is its source and id together, and any other record's ID is topic/partition/offset of the record as first consumed"`

	CloudEvents     string `env:"SIDECAR_CLOUDEVENTS" envDefault:"auto" help:"auto (a record in CloudEvents Kafka binary mode reaches the app in HTTP binary mode; structured mode passes through), wrap (every record is presented as a binary-mode CloudEvent) or off"`
	CloudEventsType string `env:"SIDECAR_CLOUDEVENTS_TYPE" envDefault:"io.kafka-sidecar.record" help:"wrap mode: the type attribute of the CloudEvents the records are presented as"`

	Dedup              string          `env:"SIDECAR_DEDUP" envDefault:"redis" help:"redis, memory (single replica only) or off"`
	RedisURL           Secret          `env:"SIDECAR_REDIS_URL" help:"redis:// or rediss:// URL (required when SIDECAR_DEDUP=redis); redis-sentinel://host:port,host:port/master or redis-cluster://host:port,host:port for HA"`
	RedisPasswordFile  string          `env:"SIDECAR_REDIS_PASSWORD_FILE" help:"file holding the Redis password (overrides one in the URL)"`
	RedisTLSCAFile     string          `env:"SIDECAR_REDIS_TLS_CA_FILE" help:"PEM CA bundle for rediss://"`
	RedisTLSCertFile   string          `env:"SIDECAR_REDIS_TLS_CERT_FILE" help:"PEM client certificate for Redis mutual TLS"`
	RedisTLSKeyFile    string          `env:"SIDECAR_REDIS_TLS_KEY_FILE" help:"PEM client key for Redis mutual TLS"`
	DedupTTL           time.Duration   `env:"SIDECAR_DEDUP_TTL" envDefault:"168h" help:"how long a record's done mark by log position lives (redelivery of the same record: crash, rebalance, offsets lost or reset); at least the topics' retention plus the longest retry delay"`
	DedupIDTTL         time.Duration   `env:"SIDECAR_DEDUP_ID_TTL" envDefault:"24h" help:"how long a done mark by message ID lives (the same message at another offset); only records with an ID of their own get one"`
	DedupMemoryBytes   int64           `env:"SIDECAR_DEDUP_MEMORY_MAX_BYTES" envDefault:"268435456" help:"SIDECAR_DEDUP=memory: memory for marks and leases; when full, delivery pauses until marks expire"`
	DedupKeyPrefix     string          `env:"SIDECAR_DEDUP_KEY_PREFIX" envDefault:"kafka-sidecar" help:"Redis key prefix; keys start with <prefix>:<group>:"`
	DedupLeaseMargin   time.Duration   `env:"SIDECAR_DEDUP_LEASE_MARGIN" envDefault:"10s" help:"a delivery lease lives SIDECAR_APP_TIMEOUT plus this margin"`
	RetryAttemptsPlace int             `env:"SIDECAR_RETRY_ATTEMPTS_IN_PLACE" envDefault:"3" help:"attempts on each tier (source topic and every retry topic) before the record moves on"`
	RetryDelays        []time.Duration `env:"SIDECAR_RETRY_DELAYS" envDefault:"10s,1m,10m" empty:"ok" help:"one retry topic per delay; empty means no retry topics"`
	RetryBackoff       time.Duration   `env:"SIDECAR_RETRY_BACKOFF" envDefault:"200ms" help:"first pause between in-place attempts (doubles, with jitter)"`
	RetryBackoffMax    time.Duration   `env:"SIDECAR_RETRY_BACKOFF_MAX" envDefault:"5s" help:"longest pause between in-place attempts"`
	DLQTopic           string          `env:"SIDECAR_DLQ_TOPIC" help:"dead-letter topic (default <topic>.<group>.dlq per source topic)"`
	CreateTopics       bool            `env:"SIDECAR_CREATE_TOPICS" envDefault:"true" help:"create missing retry and dead-letter topics at start"`

	AdminAddr    string `env:"SIDECAR_ADMIN_ADDR" envDefault:":9464" help:"listen address of /healthz, /readyz and /metrics"`
	MetricsAddr  string `env:"SIDECAR_METRICS_ADDR" help:"separate listen address for /metrics (on the admin address when empty)"`
	LogLevel     string `env:"SIDECAR_LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	LogFormat    string `env:"SIDECAR_LOG_FORMAT" envDefault:"json" help:"json or console"`
	Pprof        bool   `env:"SIDECAR_PPROF" envDefault:"false" help:"serve Go profiles at /debug/pprof/ on the admin address (for diagnosis; keep off in production)"`
	DoctorStrict bool   `env:"SIDECAR_DOCTOR_STRICT" envDefault:"false" help:"refuse to start when a durability check fails"`
}

// Secret is a string that never prints: fmt, logs and config dumps see a redaction mark instead.
type Secret string

// String implements fmt.Stringer with a redaction mark so a secret cannot leak through formatting.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps %#v from printing the secret.
func (s Secret) GoString() string { return s.String() }

// MarshalText keeps encoders (JSON logs, zap reflection) from printing the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret itself, for the one place that must send it.
func (s Secret) Reveal() string { return string(s) }

// Error is a configuration error: it names every variable that is missing or wrong, in one message.
type Error struct {
	// Problems holds one line per bad variable, each starting with the variable's name.
	Problems []string
}

// Error lists every problem, one per line.
func (e *Error) Error() string {
	return "invalid configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

// Load reads the configuration from the process environment and validates it.
func Load() (*Config, error) {
	return LoadFrom(os.Environ())
}

// LoadFrom reads the configuration from environ ("KEY=value" pairs) and validates it.
// Every bad or missing variable is reported in one *Error.
func LoadFrom(environ []string) (*Config, error) {
	vars := env.ToMap(environ)
	var cfg Config
	problems := map[string]string{}
	fields, err := fieldsOf()
	if err != nil {
		return nil, err
	}
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: vars, FuncMap: parsers()}); err != nil {
		collectParseProblems(err, fields, problems)
	}
	for _, f := range fields {
		if v, set := vars[f.Key]; set && v == "" && f.HasDefault && !f.EmptyOK {
			problems[f.Key] = fmt.Sprintf("is set but empty (unset it to use the default %q)", f.Default)
		}
	}
	// An explicitly empty list of delays means "no retry topics"; the env library would take the default.
	if v, set := vars["SIDECAR_RETRY_DELAYS"]; set && strings.TrimSpace(v) == "" {
		cfg.RetryDelays = nil
	}
	for key, msg := range cfg.validate(vars) {
		if _, ok := problems[key]; !ok {
			problems[key] = msg
		}
	}
	if len(problems) > 0 {
		return nil, newError(problems)
	}
	if err := cfg.readSecretFiles(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func newError(problems map[string]string) *Error {
	keys := make([]string, 0, len(problems))
	for k := range problems {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e := &Error{}
	for _, k := range keys {
		e.Problems = append(e.Problems, k+": "+problems[k])
	}
	return e
}

// collectParseProblems turns the env library's aggregate error into one message per variable.
func collectParseProblems(err error, fields []Field, problems map[string]string) {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		problems["SIDECAR_*"] = err.Error()
		return
	}
	byName := map[string]Field{}
	for _, f := range fields {
		byName[f.name] = f
	}
	for _, e := range agg.Errors {
		var notSet env.VarIsNotSetError
		var empty env.EmptyVarError
		var parse env.ParseError
		switch {
		case errors.As(e, &notSet):
			problems[notSet.Key] = "is required but not set"
		case errors.As(e, &empty):
			problems[empty.Key] = "is required but empty"
		case errors.As(e, &parse):
			f := byName[parse.Name]
			problems[f.Key] = fmt.Sprintf("cannot parse as %s: %v", typeWord(f.typ), unwrapAll(parse.Err))
		default:
			problems["SIDECAR_*"] = e.Error()
		}
	}
}

func unwrapAll(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func typeWord(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return "a duration (e.g. 30s, 5m)"
	case t == reflect.TypeOf([]time.Duration{}):
		return "a comma-separated list of durations (e.g. 10s,1m)"
	case t.Kind() == reflect.Bool:
		return "a boolean (true or false)"
	case t.Kind() == reflect.Int, t.Kind() == reflect.Int64:
		return "a whole number"
	default:
		return t.String()
	}
}

// parsers adds a duration parser whose error names the bad text the way users typed it.
func parsers() map[reflect.Type]env.ParserFunc {
	return map[reflect.Type]env.ParserFunc{
		reflect.TypeOf(time.Duration(0)): func(v string) (any, error) {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("%q is not a duration", v)
			}
			return d, nil
		},
	}
}

// validate checks values and combinations the types alone cannot; it returns a message per variable.
func (c *Config) validate(vars map[string]string) map[string]string {
	p := map[string]string{}
	for i, b := range c.KafkaBrokers {
		b = strings.TrimSpace(b)
		c.KafkaBrokers[i] = b
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			p["SIDECAR_KAFKA_BROKERS"] = fmt.Sprintf("%q is not host:port", b)
		}
	}
	if _, set := vars["SIDECAR_KAFKA_BROKERS"]; set && len(nonEmpty(c.KafkaBrokers)) == 0 {
		p["SIDECAR_KAFKA_BROKERS"] = "is empty: name at least one host:port"
	}
	c.KafkaTopics = nonEmpty(c.KafkaTopics)
	if _, set := vars["SIDECAR_KAFKA_TOPICS"]; set && len(c.KafkaTopics) == 0 {
		p["SIDECAR_KAFKA_TOPICS"] = "is empty: name at least one topic"
	}
	for _, t := range c.KafkaTopics {
		if err := ValidTopicName(t); err != nil {
			p["SIDECAR_KAFKA_TOPICS"] = err.Error()
		}
	}
	if _, set := vars["SIDECAR_KAFKA_GROUP"]; set && strings.TrimSpace(c.KafkaGroup) == "" {
		p["SIDECAR_KAFKA_GROUP"] = "is empty: name the consumer group"
	}
	if c.KafkaSessionTimeout < 6*time.Second || c.KafkaSessionTimeout > 30*time.Minute {
		p["SIDECAR_KAFKA_SESSION_TIMEOUT"] = fmt.Sprintf("%s is outside 6s..30m", c.KafkaSessionTimeout)
	}
	oneOf(p, "SIDECAR_KAFKA_START_OFFSET", c.KafkaStartOffset, "earliest", "latest")
	oneOf(p, "SIDECAR_KAFKA_GROUP_PROTOCOL", c.KafkaGroupProtocol, GroupProtocolClassic, GroupProtocolConsumer)
	oneOf(p, "SIDECAR_KAFKA_SASL_MECHANISM", c.KafkaSASLMechanism, "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
	if c.KafkaSASLMechanism != "" {
		if c.KafkaSASLUsername == "" {
			p["SIDECAR_KAFKA_SASL_USERNAME"] = "is required when SIDECAR_KAFKA_SASL_MECHANISM is set"
		}
		if c.KafkaSASLPassword == "" && c.KafkaSASLPasswordFile == "" {
			p["SIDECAR_KAFKA_SASL_PASSWORD"] = "or SIDECAR_KAFKA_SASL_PASSWORD_FILE is required when SIDECAR_KAFKA_SASL_MECHANISM is set"
		}
	}
	if c.KafkaSASLPassword != "" && c.KafkaSASLPasswordFile != "" {
		p["SIDECAR_KAFKA_SASL_PASSWORD_FILE"] = "conflicts with SIDECAR_KAFKA_SASL_PASSWORD: set one"
	}
	oneOf(p, "SIDECAR_KAFKA_TLS_MIN_VERSION", c.KafkaTLSMinVersion, "1.2", "1.3")
	if (c.KafkaTLSCertFile == "") != (c.KafkaTLSKeyFile == "") {
		p["SIDECAR_KAFKA_TLS_CERT_FILE"] = "and SIDECAR_KAFKA_TLS_KEY_FILE must be set together"
	}
	fileReadable(p, "SIDECAR_KAFKA_SASL_PASSWORD_FILE", c.KafkaSASLPasswordFile)
	fileReadable(p, "SIDECAR_KAFKA_TLS_CA_FILE", c.KafkaTLSCAFile)
	fileReadable(p, "SIDECAR_KAFKA_TLS_CERT_FILE", c.KafkaTLSCertFile)
	fileReadable(p, "SIDECAR_KAFKA_TLS_KEY_FILE", c.KafkaTLSKeyFile)

	if msg := checkHTTPURL(c.AppURL); msg != "" {
		p["SIDECAR_APP_URL"] = msg
	}
	if c.AppHealthURL != "" {
		if msg := checkHTTPURL(c.AppHealthURL); msg != "" {
			p["SIDECAR_APP_HEALTH_URL"] = msg
		}
	}
	positive(p, "SIDECAR_APP_TIMEOUT", c.AppTimeout)
	positive(p, "SIDECAR_APP_BACKOFF_MAX", c.AppBackoffMax)
	atLeast(p, "SIDECAR_APP_MAX_RESPONSE_BYTES", c.AppMaxResponseBytes, 1)
	fileReadable(p, "SIDECAR_APP_AUTH_TOKEN_FILE", c.AppAuthTokenFile)
	fileReadable(p, "SIDECAR_APP_TLS_CA_FILE", c.AppTLSCAFile)
	fileReadable(p, "SIDECAR_APP_TLS_CERT_FILE", c.AppTLSCertFile)
	fileReadable(p, "SIDECAR_APP_TLS_KEY_FILE", c.AppTLSKeyFile)
	if (c.AppTLSCertFile == "") != (c.AppTLSKeyFile == "") {
		p["SIDECAR_APP_TLS_CERT_FILE"] = "and SIDECAR_APP_TLS_KEY_FILE must be set together"
	}

	oneOf(p, "SIDECAR_ORDERING", c.Ordering, OrderingPartition, OrderingKey, OrderingUnordered)
	atLeast(p, "SIDECAR_MAX_IN_FLIGHT", int64(c.MaxInFlight), 1)
	if c.MaxInFlight > 65536 {
		p["SIDECAR_MAX_IN_FLIGHT"] = fmt.Sprintf("%d is above 65536", c.MaxInFlight)
	}
	atLeast(p, "SIDECAR_MAX_BUFFERED_RECORDS", int64(c.MaxBufferedRecords), 1)
	atLeast(p, "SIDECAR_MAX_BUFFERED_BYTES", c.MaxBufferedBytes, 1024)
	atLeast(p, "SIDECAR_MAX_RECORD_BYTES", c.MaxRecordBytes, 1)
	positive(p, "SIDECAR_COMMIT_INTERVAL", c.CommitInterval)
	positive(p, "SIDECAR_REVOKE_TIMEOUT", c.RevokeTimeout)
	positive(p, "SIDECAR_SHUTDOWN_TIMEOUT", c.ShutdownTimeout)
	if c.StallTimeout < 0 || (c.StallTimeout > 0 && c.StallTimeout <= c.AppTimeout) {
		p["SIDECAR_STALL_TIMEOUT"] = fmt.Sprintf("%s must be 0 (off) or above SIDECAR_APP_TIMEOUT (%s): one slow delivery is not a stall", c.StallTimeout, c.AppTimeout)
	}

	oneOf(p, "SIDECAR_DELIVERY", c.Delivery, DeliverySingle, DeliveryBatch)
	atLeast(p, "SIDECAR_BATCH_MAX_RECORDS", int64(c.BatchMaxRecords), 1)
	if c.BatchMaxWait < 0 {
		p["SIDECAR_BATCH_MAX_WAIT"] = "must not be negative"
	}

	oneOf(p, "SIDECAR_CLOUDEVENTS", c.CloudEvents, CloudEventsAuto, CloudEventsWrap, CloudEventsOff)
	if strings.TrimSpace(c.CloudEventsType) == "" || !validHeaderText(c.CloudEventsType) {
		p["SIDECAR_CLOUDEVENTS_TYPE"] = "must be a non-blank string of printable characters"
	}

	oneOf(p, "SIDECAR_DEDUP", c.Dedup, DedupRedis, DedupMemory, DedupOff)
	if c.Dedup == DedupRedis {
		if _, set := vars["SIDECAR_REDIS_URL"]; !set {
			p["SIDECAR_REDIS_URL"] = "is required when SIDECAR_DEDUP=redis (the default); set it, or SIDECAR_DEDUP=memory|off"
		} else if msg := checkRedisURL(c.RedisURL.Reveal()); msg != "" {
			p["SIDECAR_REDIS_URL"] = msg
		}
	}
	fileReadable(p, "SIDECAR_REDIS_PASSWORD_FILE", c.RedisPasswordFile)
	fileReadable(p, "SIDECAR_REDIS_TLS_CA_FILE", c.RedisTLSCAFile)
	fileReadable(p, "SIDECAR_REDIS_TLS_CERT_FILE", c.RedisTLSCertFile)
	fileReadable(p, "SIDECAR_REDIS_TLS_KEY_FILE", c.RedisTLSKeyFile)
	positive(p, "SIDECAR_DEDUP_TTL", c.DedupTTL)
	positive(p, "SIDECAR_DEDUP_ID_TTL", c.DedupIDTTL)
	atLeast(p, "SIDECAR_DEDUP_MEMORY_MAX_BYTES", c.DedupMemoryBytes, 1<<20)
	positive(p, "SIDECAR_DEDUP_LEASE_MARGIN", c.DedupLeaseMargin)
	if strings.TrimSpace(c.DedupKeyPrefix) == "" {
		p["SIDECAR_DEDUP_KEY_PREFIX"] = "must not be blank"
	}
	atLeast(p, "SIDECAR_RETRY_ATTEMPTS_IN_PLACE", int64(c.RetryAttemptsPlace), 1)
	if c.RetryAttemptsPlace > 100 {
		p["SIDECAR_RETRY_ATTEMPTS_IN_PLACE"] = fmt.Sprintf("%d is above 100", c.RetryAttemptsPlace)
	}
	for _, d := range c.RetryDelays {
		if d <= 0 {
			p["SIDECAR_RETRY_DELAYS"] = fmt.Sprintf("%s: every delay must be positive", d)
		}
	}
	if len(c.RetryDelays) > 20 {
		p["SIDECAR_RETRY_DELAYS"] = "more than 20 retry tiers"
	}
	positive(p, "SIDECAR_RETRY_BACKOFF", c.RetryBackoff)
	if c.RetryBackoffMax < c.RetryBackoff {
		p["SIDECAR_RETRY_BACKOFF_MAX"] = "must not be below SIDECAR_RETRY_BACKOFF"
	}
	c.validateDecode(p)
	if c.DLQTopic != "" {
		if err := ValidTopicName(c.DLQTopic); err != nil {
			p["SIDECAR_DLQ_TOPIC"] = err.Error()
		}
	}

	if msg := checkListenAddr(c.AdminAddr); msg != "" {
		p["SIDECAR_ADMIN_ADDR"] = msg
	}
	if c.MetricsAddr != "" {
		if msg := checkListenAddr(c.MetricsAddr); msg != "" {
			p["SIDECAR_METRICS_ADDR"] = msg
		}
	}
	validateOTel(p, vars)
	oneOf(p, "SIDECAR_LOG_LEVEL", c.LogLevel, "debug", "info", "warn", "error")
	oneOf(p, "SIDECAR_LOG_FORMAT", c.LogFormat, "json", "console")
	return p
}

// validateDecode checks the schema registry settings.
func (c *Config) validateDecode(p map[string]string) {
	oneOf(p, "SIDECAR_DECODE", c.Decode, DecodeOff, DecodeJSON)
	if c.SchemaRegistryURL != "" {
		if msg := checkHTTPURL(c.SchemaRegistryURL); msg != "" {
			p["SIDECAR_SCHEMA_REGISTRY_URL"] = msg
		} else if u, _ := url.Parse(c.SchemaRegistryURL); u.User != nil {
			p["SIDECAR_SCHEMA_REGISTRY_URL"] = "must not hold credentials: use SIDECAR_SCHEMA_REGISTRY_USERNAME and SIDECAR_SCHEMA_REGISTRY_PASSWORD_FILE"
		}
	} else if c.Decode == DecodeJSON {
		p["SIDECAR_SCHEMA_REGISTRY_URL"] = "is required when SIDECAR_DECODE=json"
	}
	if c.DecodeKeys && c.Decode != DecodeJSON {
		p["SIDECAR_DECODE_KEYS"] = "needs SIDECAR_DECODE=json"
	}
	if (c.SchemaRegistryUsername == "") != (c.SchemaRegistryPasswordFile == "") {
		p["SIDECAR_SCHEMA_REGISTRY_USERNAME"] = "and SIDECAR_SCHEMA_REGISTRY_PASSWORD_FILE must be set together"
	}
	fileReadable(p, "SIDECAR_SCHEMA_REGISTRY_PASSWORD_FILE", c.SchemaRegistryPasswordFile)
	fileReadable(p, "SIDECAR_SCHEMA_REGISTRY_TLS_CA_FILE", c.SchemaRegistryTLSCAFile)
}

// readSecretFiles loads passwords named by *_FILE variables, so the rest of the program sees one value.
func (c *Config) readSecretFiles() error {
	if c.KafkaSASLPasswordFile != "" {
		b, err := os.ReadFile(c.KafkaSASLPasswordFile)
		if err != nil {
			return newError(map[string]string{"SIDECAR_KAFKA_SASL_PASSWORD_FILE": "cannot be read: " + err.Error()})
		}
		c.KafkaSASLPassword = Secret(strings.TrimRight(string(b), "\r\n"))
	}
	if c.SchemaRegistryPasswordFile != "" {
		b, err := os.ReadFile(c.SchemaRegistryPasswordFile)
		if err != nil {
			return newError(map[string]string{"SIDECAR_SCHEMA_REGISTRY_PASSWORD_FILE": "cannot be read: " + err.Error()})
		}
		c.SchemaRegistryPassword = Secret(strings.TrimRight(string(b), "\r\n"))
	}
	return nil
}

// ValidTopicName reports whether name is a legal Kafka topic name.
func ValidTopicName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%q is not a valid topic name", name)
	}
	if len(name) > 249 {
		return fmt.Errorf("topic name %q is longer than 249 characters", name[:20]+"...")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q is not a valid topic name (letters, digits, '.', '_' and '-' only)", name)
		}
	}
	return nil
}

func nonEmpty(in []string) []string {
	out := in[:0]
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func oneOf(p map[string]string, key, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	var shown []string
	for _, a := range allowed {
		if a != "" {
			shown = append(shown, a)
		}
	}
	p[key] = fmt.Sprintf("%q is not one of %s", v, strings.Join(shown, ", "))
}

func positive(p map[string]string, key string, d time.Duration) {
	if d <= 0 {
		p[key] = fmt.Sprintf("%s must be positive", d)
	}
}

func atLeast(p map[string]string, key string, v, lowest int64) {
	if v < lowest {
		p[key] = fmt.Sprintf("%d is below %d", v, lowest)
	}
}

func fileReadable(p map[string]string, key, path string) {
	if path == "" {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		p[key] = "cannot be read: " + err.Error()
		return
	}
	_ = f.Close()
}

func checkHTTPURL(raw string) string {
	u, err := url.Parse(strings.ReplaceAll(raw, "{topic}", "topic"))
	if err != nil {
		return fmt.Sprintf("%q is not a URL", raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("%q must start with http:// or https://", raw)
	}
	if u.Host == "" {
		return fmt.Sprintf("%q has no host", raw)
	}
	return ""
}

func checkRedisURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "is not a URL like redis://host:6379/0"
	}
	switch u.Scheme {
	case "redis", "rediss", "redis-sentinel", "rediss-sentinel", "redis-cluster", "rediss-cluster":
		return ""
	}
	return fmt.Sprintf("scheme %q is not redis://, rediss://, redis-sentinel:// or redis-cluster://", u.Scheme)
}

func checkListenAddr(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Sprintf("%q is not host:port (e.g. :9464 or 127.0.0.1:9464)", addr)
	}
	return ""
}

// validHeaderText reports whether s holds no control characters, so it can travel in a header as it is.
func validHeaderText(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// validateOTel checks the standard OpenTelemetry variables the sidecar's tracing reads, so that a typo stops
// the start like any other bad variable instead of silently tracing nothing (or everything).
func validateOTel(p map[string]string, vars map[string]string) {
	if v, set := vars["OTEL_TRACES_EXPORTER"]; set {
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "none" && e != "otlp" && e != "console" {
				p["OTEL_TRACES_EXPORTER"] = fmt.Sprintf("%q is not one of none, otlp, console", e)
			}
		}
	}
	for _, key := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		if v, set := vars[key]; set {
			oneOf(p, key, strings.TrimSpace(v), "grpc", "http/protobuf")
		}
	}
	sampler, set := vars["OTEL_TRACES_SAMPLER"]
	sampler = strings.TrimSpace(sampler)
	if set {
		oneOf(p, "OTEL_TRACES_SAMPLER", sampler, "always_on", "always_off", "traceidratio",
			"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio")
	}
	if arg, ok := vars["OTEL_TRACES_SAMPLER_ARG"]; ok && strings.HasSuffix(sampler, "traceidratio") {
		if r, err := strconv.ParseFloat(strings.TrimSpace(arg), 64); err != nil || r < 0 || r > 1 {
			p["OTEL_TRACES_SAMPLER_ARG"] = fmt.Sprintf("%q is not a ratio between 0 and 1", arg)
		}
	}
}
