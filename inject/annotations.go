package inject

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Prefix starts every annotation this package reads.
const Prefix = "kafka-sidecar.io/"

// The annotations read from a pod template (or a Pod). Their names are part of the user-facing contract.
const (
	// AnnotationInject asks for the sidecar: "true" injects, "false" (or no annotation) leaves the pod alone.
	AnnotationInject = Prefix + "inject"
	// AnnotationBrokers is SIDECAR_KAFKA_BROKERS: comma-separated host:port seeds.
	AnnotationBrokers = Prefix + "brokers"
	// AnnotationTopics is SIDECAR_KAFKA_TOPICS: comma-separated topic names.
	AnnotationTopics = Prefix + "topics"
	// AnnotationGroup is SIDECAR_KAFKA_GROUP: the consumer group ID.
	AnnotationGroup = Prefix + "group"
	// AnnotationAppPort makes SIDECAR_APP_URL http://127.0.0.1:<port>/.
	AnnotationAppPort = Prefix + "app-port"
	// AnnotationAppURL is SIDECAR_APP_URL as is; exclusive with AnnotationAppPort.
	AnnotationAppURL = Prefix + "app-url"
	// AnnotationConfigMap names a ConfigMap in the pod's namespace whose SIDECAR_* keys reach the sidecar.
	AnnotationConfigMap = Prefix + "config-map"
	// AnnotationSecret names a Secret in the pod's namespace whose SIDECAR_* keys reach the sidecar.
	AnnotationSecret = Prefix + "secret"
	// AnnotationStaticMembership sets SIDECAR_KAFKA_INSTANCE_ID from the pod name ("true") or not ("false").
	// Without it, only pods with stable names (a StatefulSet's) get static membership.
	AnnotationStaticMembership = Prefix + "static-membership"
	// AnnotationImage overrides the sidecar image.
	AnnotationImage = Prefix + "image"
	// AnnotationCPURequest, AnnotationMemoryRequest and AnnotationMemoryLimit set the sidecar's resources.
	AnnotationCPURequest    = Prefix + "cpu-request"
	AnnotationMemoryRequest = Prefix + "memory-request"
	AnnotationMemoryLimit   = Prefix + "memory-limit"
	// AnnotationAdminPort is the port of the sidecar's /healthz, /readyz and /metrics (SIDECAR_ADMIN_ADDR).
	AnnotationAdminPort = Prefix + "admin-port"
)

// Annotations lists every annotation name this package knows, in the order the README documents them.
var Annotations = []string{
	AnnotationInject, AnnotationBrokers, AnnotationTopics, AnnotationGroup, AnnotationAppPort, AnnotationAppURL,
	AnnotationConfigMap, AnnotationSecret, AnnotationStaticMembership, AnnotationImage, AnnotationCPURequest,
	AnnotationMemoryRequest, AnnotationMemoryLimit, AnnotationAdminPort,
}

// AnnotationError reports one annotation whose value cannot be used (or an unknown kafka-sidecar.io/ name).
type AnnotationError struct {
	Annotation string
	Value      string
	Reason     string
}

func (e *AnnotationError) Error() string {
	return fmt.Sprintf("annotation %s: %q: %s", e.Annotation, e.Value, e.Reason)
}

// Settings is what a pod's annotations ask for. Empty strings and zero values mean "not set": the Defaults
// (and then the sidecar's own defaults) apply.
type Settings struct {
	Inject bool
	// Brokers and Topics are normalised: comma-separated, no spaces.
	Brokers   string
	Topics    string
	Group     string
	AppURL    string
	ConfigMap string
	Secret    string
	// StaticMembership is nil when the annotation is absent: the kind of workload decides.
	StaticMembership *bool
	Image            string
	CPURequest       string
	MemoryRequest    string
	MemoryLimit      string
	AdminPort        int
}

// ParseAnnotations reads the kafka-sidecar.io/ annotations of a pod. Annotations without the prefix are
// ignored. When the pod does not ask for the sidecar, the other kafka-sidecar.io/ annotations are not read.
// Every bad annotation is reported, joined in one error of *AnnotationError values.
func ParseAnnotations(annotations map[string]string) (Settings, error) {
	var s Settings
	var errs errorList
	raw, ok := annotations[AnnotationInject]
	if !ok {
		return s, nil
	}
	switch raw {
	case "true":
		s.Inject = true
	case "false":
		return s, nil
	default:
		return s, &AnnotationError{AnnotationInject, raw, `want "true" or "false"`}
	}
	names := make([]string, 0, len(annotations))
	for name := range annotations {
		if strings.HasPrefix(name, Prefix) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		value := annotations[name]
		if reason := s.set(name, value); reason != "" {
			errs.add(&AnnotationError{name, value, reason})
		}
	}
	if _, port := annotations[AnnotationAppPort]; port {
		if _, u := annotations[AnnotationAppURL]; u {
			errs.add(&AnnotationError{AnnotationAppURL, annotations[AnnotationAppURL], "set either " + AnnotationAppPort + " or " + AnnotationAppURL + ", not both"})
		}
	}
	return s, errs.err()
}

// set parses one annotation into s and returns why it is bad, or "".
func (s *Settings) set(name, value string) string {
	switch name {
	case AnnotationInject:
		return ""
	case AnnotationBrokers:
		v, reason := parseBrokers(value)
		s.Brokers = v
		return reason
	case AnnotationTopics:
		v, reason := parseTopics(value)
		s.Topics = v
		return reason
	case AnnotationGroup:
		s.Group = value
		return checkGroup(value)
	case AnnotationAppPort:
		port, reason := parsePort(value)
		if reason == "" {
			s.AppURL = "http://127.0.0.1:" + strconv.Itoa(port) + "/"
		}
		return reason
	case AnnotationAppURL:
		s.AppURL = value
		return checkURL(value)
	case AnnotationConfigMap:
		s.ConfigMap = value
		return checkObjectName(value)
	case AnnotationSecret:
		s.Secret = value
		return checkObjectName(value)
	case AnnotationStaticMembership:
		switch value {
		case "true", "false":
			b := value == "true"
			s.StaticMembership = &b
			return ""
		}
		return `want "true" or "false"`
	case AnnotationImage:
		s.Image = value
		return checkImage(value)
	case AnnotationCPURequest:
		s.CPURequest = value
		return checkQuantity(value)
	case AnnotationMemoryRequest:
		s.MemoryRequest = value
		return checkQuantity(value)
	case AnnotationMemoryLimit:
		s.MemoryLimit = value
		return checkQuantity(value)
	case AnnotationAdminPort:
		port, reason := parsePort(value)
		s.AdminPort = port
		return reason
	}
	return "unknown annotation; known: " + strings.Join(Annotations, ", ")
}

// topicName is Kafka's rule for topic names.
var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func parseTopics(value string) (string, string) {
	topics, reason := splitList(value)
	if reason != "" {
		return "", reason
	}
	for _, t := range topics {
		if !topicName.MatchString(t) || t == "." || t == ".." {
			return "", fmt.Sprintf("%q is not a Kafka topic name (letters, digits, '.', '_', '-'; at most 249)", t)
		}
	}
	return strings.Join(topics, ","), ""
}

func parseBrokers(value string) (string, string) {
	brokers, reason := splitList(value)
	if reason != "" {
		return "", reason
	}
	for _, b := range brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" || strings.ContainsFunc(host, unicode.IsSpace) {
			return "", fmt.Sprintf("%q is not host:port", b)
		}
		if _, reason := parsePort(port); reason != "" {
			return "", fmt.Sprintf("%q: %s", b, reason)
		}
	}
	return strings.Join(brokers, ","), ""
}

// splitList splits a comma-separated list, trimming spaces; an empty item is an error.
func splitList(value string) ([]string, string) {
	if strings.TrimSpace(value) == "" {
		return nil, "empty"
	}
	items := strings.Split(value, ",")
	for i, item := range items {
		items[i] = strings.TrimSpace(item)
		if items[i] == "" {
			return nil, "empty item in the comma-separated list"
		}
	}
	return items, ""
}

func checkGroup(value string) string {
	if strings.TrimSpace(value) == "" {
		return "empty"
	}
	if strings.ContainsFunc(value, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) {
		return "spaces and control characters are not allowed"
	}
	if len(value) > 255 {
		return "longer than 255 bytes"
	}
	return ""
}

func parsePort(value string) (int, string) {
	port, err := strconv.Atoi(value)
	if err != nil || port < 1 || port > 65535 || strconv.Itoa(port) != value {
		return 0, "want a port number from 1 to 65535"
	}
	return port, ""
}

func checkURL(value string) string {
	u, err := url.Parse(value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "want an http:// or https:// URL with a host"
	}
	if strings.ContainsFunc(value, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) {
		return "spaces and control characters are not allowed"
	}
	return ""
}

func checkObjectName(value string) string {
	if msgs := validation.IsDNS1123Subdomain(value); len(msgs) > 0 {
		return "not a Kubernetes object name: " + strings.Join(msgs, "; ")
	}
	return ""
}

func checkImage(value string) string {
	if value == "" || len(value) > 512 || strings.ContainsFunc(value, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) {
		return "want an image reference without spaces"
	}
	return ""
}

func checkQuantity(value string) string {
	q, err := resource.ParseQuantity(value)
	if err != nil {
		return "not a Kubernetes quantity (e.g. 100m, 64Mi)"
	}
	if q.Sign() <= 0 {
		return "must be positive"
	}
	return ""
}
