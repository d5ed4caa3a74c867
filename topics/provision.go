package topics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Retention of the topics Provision creates.
const (
	// MinRetryRetention is the shortest retention of a retry topic: a week, so a record waiting on a tier
	// survives a long outage of the sidecars. A tier whose delay is longer keeps records twice its delay.
	MinRetryRetention = 7 * 24 * time.Hour
	// DeadLetterRetention is the retention of a dead-letter topic: four weeks, so records failed over a
	// holiday are still there to inspect and replay when people return.
	DeadLetterRetention = 28 * 24 * time.Hour
)

// Role says what a topic is for.
type Role string

// The roles of the topics in a Plan.
const (
	// RoleSource is a topic records first arrive on.
	RoleSource Role = "source"
	// RoleRetry is a retry tier.
	RoleRetry Role = "retry"
	// RoleDeadLetter is a dead-letter topic.
	RoleDeadLetter Role = "dead-letter"
)

// MissingTopicError reports a topic that does not exist and that Provision may not or cannot create.
type MissingTopicError struct {
	// Topic is the missing topic.
	Topic string
	// Role is what the topic is for.
	Role Role
	// CreateDisabled is set when the topic would have been created but creation is turned off
	// (SIDECAR_CREATE_TOPICS=false). A missing source topic is never created.
	CreateDisabled bool
}

// Error names the topic and, for a topic the sidecar would have created, the setting that stopped it.
func (e *MissingTopicError) Error() string {
	if e.CreateDisabled {
		return fmt.Sprintf("%s topic %q does not exist and SIDECAR_CREATE_TOPICS=false: create it with its source's partition count, or set SIDECAR_CREATE_TOPICS=true", e.Role, e.Topic)
	}
	return fmt.Sprintf("%s topic %q does not exist", e.Role, e.Topic)
}

// Created describes a topic Provision created.
type Created struct {
	// Topic is the topic's name.
	Topic string
	// Role is RoleRetry or RoleDeadLetter.
	Role Role
	// Partitions and ReplicationFactor are copied from the source topic.
	Partitions        int32
	ReplicationFactor int16
	// Configs are the topic configs it was created with.
	Configs map[string]string
}

// Provisioned is what Provision did, for the caller to log.
type Provisioned struct {
	// Created lists the topics created by this call, in plan order. A topic that a concurrent sidecar
	// created first is not listed.
	Created []Created
	// Warnings describe settings that work but weaken a guarantee (a replication factor below 3, a retry
	// topic with fewer partitions than its source, source configs that could not be read).
	Warnings []string
}

// Option tunes Provision.
type Option func(*options)

type options struct {
	delays []time.Duration
}

// WithRetryDelays gives the delay of each retry tier, tier 1 first (the same list the plans were made
// with), so that a retry topic keeps its records at least twice as long as they wait on it. Without it every
// retry topic gets MinRetryRetention.
func WithRetryDelays(delays []time.Duration) Option {
	return func(o *options) { o.delays = slices.Clone(delays) }
}

// target is a retry or dead-letter topic to check, with the settings it gets if it must be created.
type target struct {
	name       string
	role       Role
	sources    []string // every source that writes to it: a dead-letter override is shared
	partitions int32
	rf         int16
	retention  time.Duration
}

// source is what Provision learns about a source topic.
type source struct {
	partitions int32
	rf         int16
	minISR     int // 0 when unknown
}

// Provision makes sure every retry and dead-letter topic of plans exists, creating the missing ones when
// create is set. It first describes the source topics; a missing source topic is an error naming it
// (*MissingTopicError), and nothing is created then.
//
// A created topic has its source's partition count and replication factor, so a copy can keep the source
// record's partition number. Where several sources share a dead-letter topic it takes the largest of each.
// Its configs:
//   - min.insync.replicas: 2, or the source's value when higher, never above the replication factor. With a
//     replication factor of 2 this is 2: writes to the topic stop while one of its brokers is down, and the
//     sidecar waits (a failed record is never lost, it is routed late). Durability is chosen over
//     availability because these copies are the only place a failed record lives once its source offset
//     is committed. A replication factor below 3 adds a warning.
//   - unclean.leader.election.enable=false, so an out-of-sync replica never becomes leader and drops acked
//     copies.
//   - cleanup.policy=delete.
//   - retention.ms: MinRetryRetention or twice the tier's delay, whichever is longer, for a retry topic
//     (see WithRetryDelays); DeadLetterRetention for a dead-letter topic.
//
// A topic that appears between the check and the create (another sidecar of the group starting at the same
// time) counts as success. Topics that already exist are left as they are; their settings are the
// operator's (the doctor command audits them). With create unset every missing topic is an error naming it
// and SIDECAR_CREATE_TOPICS=false. All missing topics are reported at once, joined.
//
// Provision is safe to call again: when every topic exists it only reads metadata.
func Provision(ctx context.Context, adm *kadm.Client, plans []Plan, create bool, opts ...Option) (Provisioned, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var (
		res     Provisioned
		sources []string
		targets []*target
		byName  = make(map[string]*target)
	)
	addTarget := func(name string, role Role, src string, retention time.Duration) {
		if t, ok := byName[name]; ok {
			t.retention = max(t.retention, retention)
			if !slices.Contains(t.sources, src) {
				t.sources = append(t.sources, src)
			}
			return
		}
		t := &target{name: name, role: role, sources: []string{src}, retention: retention}
		byName[name] = t
		targets = append(targets, t)
	}
	for _, p := range plans {
		if !slices.Contains(sources, p.Source) {
			sources = append(sources, p.Source)
		}
		for i, name := range p.Retry {
			retention := MinRetryRetention
			if i < len(o.delays) && o.delays[i] < math.MaxInt64/2 {
				retention = max(retention, 2*o.delays[i])
			}
			addTarget(name, RoleRetry, p.Source, retention)
		}
		if p.DeadLetter != "" {
			addTarget(p.DeadLetter, RoleDeadLetter, p.Source, DeadLetterRetention)
		}
	}
	if len(sources) == 0 {
		return res, nil
	}

	names := slices.Clone(sources)
	for _, t := range targets {
		names = append(names, t.name)
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return res, fmt.Errorf("describing topics %s: %w", strings.Join(names, ", "), err)
	}

	srcs := make(map[string]*source, len(sources))
	var errs []error
	for _, name := range sources {
		d, exists, err := lookup(details, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("describing source topic %q: %w", name, err))
			continue
		}
		if !exists {
			errs = append(errs, &MissingTopicError{Topic: name, Role: RoleSource})
			continue
		}
		s := &source{partitions: int32(len(d.Partitions)), rf: replicationFactor(d)}
		if s.partitions == 0 || s.rf == 0 {
			errs = append(errs, fmt.Errorf("describing source topic %q: metadata lists %d partitions and %d replicas", name, s.partitions, s.rf))
			continue
		}
		srcs[name] = s
	}
	if len(errs) > 0 {
		return res, errors.Join(errs...)
	}

	var missing []*target
	for _, t := range targets {
		if _, isSource := srcs[t.name]; isSource {
			continue // a topic that is also read as a source exists already; leave it alone
		}
		for _, s := range t.sources {
			t.partitions = max(t.partitions, srcs[s].partitions)
			t.rf = max(t.rf, srcs[s].rf)
		}
		d, exists, err := lookup(details, t.name)
		switch {
		case err != nil && kerr.IsRetriable(err):
			// The topic exists but is in flux (a leader election, or another sidecar created it a moment
			// ago): there is nothing to create, and its partition count is not known yet.
		case err != nil:
			errs = append(errs, fmt.Errorf("describing %s topic %q: %w", t.role, t.name, err))
		case !exists && !create:
			errs = append(errs, &MissingTopicError{Topic: t.name, Role: t.role, CreateDisabled: true})
		case !exists:
			missing = append(missing, t)
		case int32(len(d.Partitions)) < t.partitions:
			res.Warnings = append(res.Warnings, fmt.Sprintf(
				"%s topic %q has %d partitions, fewer than its source's %d: copies from the higher partitions are placed by key hash",
				t.role, t.name, len(d.Partitions), t.partitions))
		}
	}
	if len(errs) > 0 {
		return res, errors.Join(errs...)
	}
	if len(missing) == 0 {
		return res, nil
	}

	readMinISR(ctx, adm, srcs, sources, &res)
	for _, t := range missing {
		minISR := 0
		for _, s := range t.sources {
			minISR = max(minISR, srcs[s].minISR)
		}
		configs, warning := topicConfigs(t, minISR)
		if warning != "" {
			res.Warnings = append(res.Warnings, warning)
		}
		kconfigs := make(map[string]*string, len(configs))
		for k, v := range configs {
			kconfigs[k] = kadm.StringPtr(v)
		}
		_, err := adm.CreateTopic(ctx, t.partitions, t.rf, kconfigs, t.name)
		if errors.Is(err, kerr.TopicAlreadyExists) {
			continue // another sidecar of the group got there first
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("creating %s topic %q (%d partitions, replication factor %d): %w",
				t.role, t.name, t.partitions, t.rf, err))
			continue
		}
		res.Created = append(res.Created, Created{
			Topic: t.name, Role: t.role, Partitions: t.partitions, ReplicationFactor: t.rf, Configs: configs,
		})
	}
	return res, errors.Join(errs...)
}

// lookup finds name among details: exists is false for a topic the cluster does not know, err is set for
// any other per-topic failure (an authorization error, a leader election under way).
func lookup(details kadm.TopicDetails, name string) (d kadm.TopicDetail, exists bool, err error) {
	d, ok := details[name]
	if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return d, false, nil
	}
	if d.Err != nil {
		return d, false, d.Err
	}
	return d, true, nil
}

// replicationFactor is the largest replica count among the topic's partitions: a partition under
// reassignment may briefly list more or fewer, the largest is what the operator asked for or more.
func replicationFactor(d kadm.TopicDetail) int16 {
	rf := 0
	for _, p := range d.Partitions {
		rf = max(rf, len(p.Replicas))
	}
	return int16(rf)
}

// readMinISR fills in the sources' min.insync.replicas. It is a refinement, not a requirement: when the
// configs cannot be read (the sidecar's principal may lack DescribeConfigs) the default of 2 applies and
// a warning says so.
func readMinISR(ctx context.Context, adm *kadm.Client, srcs map[string]*source, names []string, res *Provisioned) {
	rcs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("reading configs of source topics %q: %v (using min.insync.replicas=2)", names, err))
		return
	}
	for _, rc := range rcs {
		s, ok := srcs[rc.Name]
		if !ok {
			continue
		}
		if rc.Err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("reading configs of source topic %q: %v (using min.insync.replicas=2)", rc.Name, rc.Err))
			continue
		}
		for _, c := range rc.Configs {
			if c.Key != "min.insync.replicas" {
				continue
			}
			if n, err := strconv.Atoi(c.MaybeValue()); err == nil && n > 0 {
				s.minISR = n
			}
		}
	}
}

// topicConfigs are the configs of a topic to create, and a warning when its replication factor cannot
// give the durability the sidecar promises.
func topicConfigs(t *target, sourceMinISR int) (map[string]string, string) {
	rf := int(t.rf)
	minISR := min(max(2, sourceMinISR), max(rf, 1))
	var warning string
	switch rf {
	case 1:
		warning = fmt.Sprintf("%s topic %q is created with replication factor 1 (its source's): one broker failure can lose copies; use 3 replicas", t.role, t.name)
	case 2:
		warning = fmt.Sprintf("%s topic %q is created with replication factor 2 (its source's) and min.insync.replicas=2: while one of its brokers is down, records routed to it wait; use 3 replicas", t.role, t.name)
	}
	return map[string]string{
		"min.insync.replicas":            strconv.Itoa(minISR),
		"unclean.leader.election.enable": "false",
		"cleanup.policy":                 "delete",
		"retention.ms":                   strconv.FormatInt(t.retention.Milliseconds(), 10),
	}, warning
}
