package doctor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/topics"
)

// Thresholds of the topic checks.
const (
	// dlqMinRetention is how long dead letters must stay: long enough for a person to notice, investigate
	// and replay over holidays.
	dlqMinRetention = 21 * 24 * time.Hour
	// comfortableRetention is the retention below which an outage of the app (delivery pauses, records wait)
	// soon turns into lost records.
	comfortableRetention = 24 * time.Hour
	// goodReplication is the replication factor that survives one broker down while still accepting writes
	// with min.insync.replicas=2.
	goodReplication = 3
	// Kafka's defaults, used when a broker does not report a config.
	kafkaDefaultRetentionMs = int64(7 * 24 * time.Hour / time.Millisecond)
	kafkaDefaultMinISR      = 1
)

// Topic config names the checks read.
const (
	cfgMinISR         = "min.insync.replicas"
	cfgUnclean        = "unclean.leader.election.enable"
	cfgRetentionMs    = "retention.ms"
	cfgRetentionBytes = "retention.bytes"
	cfgCleanupPolicy  = "cleanup.policy"
)

// role is what a topic is to the sidecar.
type role int

const (
	roleSource role = iota
	roleRetry
	roleDLQ
)

// plannedTopic is one topic the configuration reads or writes.
type plannedTopic struct {
	name   string
	role   role
	source string // the source topic it belongs to
}

// topicState is what the cluster said about one planned topic.
type topicState struct {
	plannedTopic
	exists     bool
	partitions int
	rf         int // smallest replica count over the partitions
	configs    *kadm.ResourceConfig
	configsErr error // why configs is nil for an existing topic
}

// kafkaChecks runs the cluster, topic and group checks.
func (r *run) kafkaChecks(ctx context.Context) {
	if r.deps.Admin == nil {
		r.add(Check{ID: "kafka.reachable", Status: Fail, Observed: "no Kafka admin client", Why: "every topic check needs the cluster", Fix: "check SIDECAR_KAFKA_BROKERS"})
		return
	}
	planned := r.plannedTopics()
	names := make([]string, len(planned))
	for i, p := range planned {
		names[i] = p.name
	}

	sctx, cancel := step(ctx)
	meta, err := r.deps.Admin.Metadata(sctx, names...)
	cancel()
	if err != nil {
		r.add(Check{ID: "kafka.reachable", Status: Fail,
			Observed: fmt.Sprintf("%s: %s", strings.Join(r.cfg.KafkaBrokers, ","), describeErr(err)),
			Why:      "the sidecar cannot consume or write retry and dead-letter copies without the cluster",
			Fix:      "check SIDECAR_KAFKA_BROKERS, the network path to the brokers, and the TLS/SASL settings"})
		return
	}
	r.add(Check{ID: "kafka.reachable", Status: Pass,
		Observed: fmt.Sprintf("%s answered (cluster %s)", plural(len(meta.Brokers), "broker"), orDash(meta.Cluster)),
		Why:      "the sidecar consumes from and produces to this cluster"})

	states := make([]*topicState, 0, len(planned))
	for _, p := range planned {
		st := &topicState{plannedTopic: p}
		states = append(states, st)
		r.existenceChecks(st, meta.Topics)
	}
	r.loadConfigs(ctx, states)
	for _, st := range states {
		if !st.exists {
			continue
		}
		r.minISRCheck(st)
		r.uncleanCheck(st)
		if st.role == roleDLQ {
			r.dlqRetentionCheck(st)
		} else {
			r.retentionCheck(st)
		}
	}
	r.groupOffsetsCheck(ctx, states)
	r.groupProtocolCheck(ctx)
	r.add(Check{ID: "producer.settings", Status: Pass,
		Observed: "acks=all, idempotent producer, retried until the broker acknowledges",
		Why:      "a retry or dead-letter copy counts as done only after every in-sync replica holds it, and a retried produce never writes it twice"})
}

// plannedTopics lists source, retry and dead-letter topics once each, in plan order.
func (r *run) plannedTopics() []plannedTopic {
	var out []plannedTopic
	seen := map[string]bool{}
	addTopic := func(name string, ro role, source string) {
		if !seen[name] {
			seen[name] = true
			out = append(out, plannedTopic{name: name, role: ro, source: source})
		}
	}
	for _, p := range topics.PlanFor(r.cfg.KafkaTopics, r.cfg.KafkaGroup, len(r.cfg.RetryDelays), r.cfg.DLQTopic) {
		addTopic(p.Source, roleSource, p.Source)
		for _, t := range p.Retry {
			addTopic(t, roleRetry, p.Source)
		}
		addTopic(p.DeadLetter, roleDLQ, p.Source)
	}
	return out
}

// existenceChecks reports topic.exists and topic.replication for one topic from the metadata.
func (r *run) existenceChecks(st *topicState, details kadm.TopicDetails) {
	id := "topic.exists:" + st.name
	d, ok := details[st.name]
	switch {
	case ok && notPermitted(d.Err):
		r.add(r.notPermittedCheck(id, st.name, "Describe", d.Err))
		return
	case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
		r.add(r.missingTopicCheck(st, details))
		return
	case d.Err != nil:
		r.add(Check{ID: id, Status: Warn, Observed: "cannot describe: " + describeErr(d.Err),
			Why: "the topic's partitions and replicas are unknown", Fix: "run doctor again; check the broker logs if this persists"})
		return
	}
	st.exists = true
	st.partitions = len(d.Partitions)
	st.rf = -1
	underReplicated := 0
	for _, p := range d.Partitions {
		if st.rf < 0 || len(p.Replicas) < st.rf {
			st.rf = len(p.Replicas)
		}
		if len(p.ISR) < len(p.Replicas) {
			underReplicated++
		}
	}
	if st.rf < 0 {
		st.rf = 0
	}
	r.add(Check{ID: id, Status: Pass, Observed: plural(st.partitions, "partition"),
		Why: r.roleWhy(st.plannedTopic)})

	c := Check{ID: "topic.replication:" + st.name,
		Observed: fmt.Sprintf("replication factor %d", st.rf),
		Why:      "each record lives on this many brokers; with fewer than 3, losing one broker either loses acknowledged records or stops writes"}
	switch {
	case st.rf <= 1:
		c.Status = Fail
		c.Why = "every record lives on one broker: its disk failing loses records that were acknowledged"
	case st.rf < goodReplication:
		c.Status = Warn
		c.Why = "with 2 replicas, either min.insync.replicas=2 stops writes while one broker is down, or min.insync.replicas=1 lets an acknowledged record live on one broker"
	default:
		c.Status = Pass
	}
	if underReplicated > 0 && c.Status == Pass {
		c.Status = Warn
		c.Observed += fmt.Sprintf(", %d of %d partitions under-replicated now", underReplicated, st.partitions)
		c.Why = "some replicas are not in sync right now, so fewer copies than configured protect new records"
		c.Fix = "check the brokers hosting the out-of-sync replicas (kafka-topics.sh " + r.bootstrap() + " --describe --under-replicated-partitions)"
	}
	if c.Status != Pass && c.Fix == "" {
		c.Fix = fmt.Sprintf("raise the replication factor to %d: kafka-reassign-partitions.sh %s --reassignment-json-file increase-rf.json --execute (list %d broker ids per partition of %s in the file)",
			goodReplication, r.bootstrap(), goodReplication, st.name)
	}
	r.add(c)
}

// missingTopicCheck reports a topic that does not exist. The command that creates a retry or dead-letter topic
// gives it the source topic's partition count, read from details; a missing source topic's count is the user's
// choice.
func (r *run) missingTopicCheck(st *topicState, details kadm.TopicDetails) Check {
	c := Check{ID: "topic.exists:" + st.name, Observed: "missing", Why: r.roleWhy(st.plannedTopic)}
	partitions := "<count>"
	if d, ok := details[st.source]; ok && d.Err == nil && len(d.Partitions) > 0 && st.role != roleSource {
		partitions = strconv.Itoa(len(d.Partitions))
	}
	create := fmt.Sprintf("kafka-topics.sh %s --create --topic %s --partitions %s --replication-factor %d --config min.insync.replicas=2",
		r.bootstrap(), st.name, partitions, goodReplication)
	switch {
	case st.role == roleSource:
		c.Status = Fail
		c.Why = "the sidecar has nothing to consume: the source topic does not exist"
		c.Fix = "create it or correct SIDECAR_KAFKA_TOPICS: " + create
	case r.cfg.CreateTopics:
		c.Status = Warn
		c.Observed = "missing; the sidecar creates it at start (SIDECAR_CREATE_TOPICS=true)"
		c.Fix = "start the sidecar once with rights to create topics, or create it: " + create
	default:
		c.Status = Fail
		c.Observed = "missing and SIDECAR_CREATE_TOPICS=false"
		c.Fix = "create it: " + create
	}
	return c
}

// roleWhy says what a topic is for.
func (r *run) roleWhy(p plannedTopic) string {
	switch p.role {
	case roleRetry:
		return "a retry tier of " + p.source + ": records that failed wait here for their next attempt"
	case roleDLQ:
		return "the dead-letter topic of " + p.source + ": records that cannot be delivered are kept here for inspection and replay"
	}
	return "a source topic the sidecar consumes"
}

// loadConfigs describes the configs of every existing topic in one request.
func (r *run) loadConfigs(ctx context.Context, states []*topicState) {
	var names []string
	for _, st := range states {
		if st.exists {
			names = append(names, st.name)
		}
	}
	if len(names) == 0 {
		return
	}
	sctx, cancel := step(ctx)
	rcs, err := r.deps.Admin.DescribeTopicConfigs(sctx, names...)
	cancel()
	for _, st := range states {
		if !st.exists {
			continue
		}
		rc, onErr := rcs.On(st.name, nil)
		switch {
		case onErr == nil && rc.Err == nil:
			st.configs = &rc
		case onErr == nil:
			st.configsErr = rc.Err
		case err != nil:
			st.configsErr = err
		default:
			st.configsErr = onErr
		}
	}
}

// configValue returns a topic config's effective value and where it comes from; found is false when the
// broker did not report it.
func configValue(rc *kadm.ResourceConfig, key string) (value string, source kmsg.ConfigSource, found bool) {
	for _, c := range rc.Configs {
		if c.Key == key && c.Value != nil {
			return *c.Value, c.Source, true
		}
	}
	return "", kmsg.ConfigSourceUnknown, false
}

// sourceName says where a config value comes from, in the words kafka-configs.sh uses.
func sourceName(s kmsg.ConfigSource) string {
	switch s {
	case kmsg.ConfigSourceDynamicTopicConfig:
		return "topic override"
	case kmsg.ConfigSourceDynamicBrokerConfig:
		return "broker dynamic config"
	case kmsg.ConfigSourceDynamicDefaultBrokerConfig:
		return "cluster-wide dynamic default"
	case kmsg.ConfigSourceStaticBrokerConfig:
		return "broker server.properties"
	case kmsg.ConfigSourceDefaultConfig:
		return "Kafka default"
	}
	return "unknown source"
}

// configUnreadable turns a config describe failure into the check it replaces, or returns false when the
// configs were read.
func (r *run) configUnreadable(id string, st *topicState) (Check, bool) {
	if st.configs != nil {
		return Check{}, false
	}
	if notPermitted(st.configsErr) {
		return r.notPermittedCheck(id, st.name, "DescribeConfigs", st.configsErr), true
	}
	err := st.configsErr
	if err == nil {
		err = errors.New("no configs returned")
	}
	return Check{ID: id, Status: Warn, Observed: "cannot read the topic configs: " + describeErr(err),
		Why: "the setting could not be checked", Fix: "run doctor again; check the broker logs if this persists"}, true
}

// minISRCheck reports topic.min_insync: min.insync.replicas must be at least 2 and below the replication factor.
func (r *run) minISRCheck(st *topicState) {
	id := "topic.min_insync:" + st.name
	if c, bad := r.configUnreadable(id, st); bad {
		r.add(c)
		return
	}
	mis, src := kafkaDefaultMinISR, kmsg.ConfigSourceDefaultConfig
	if v, s, ok := configValue(st.configs, cfgMinISR); ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			r.add(Check{ID: id, Status: Warn, Observed: fmt.Sprintf("%s=%q is not a number", cfgMinISR, v), Why: "the setting could not be checked"})
			return
		}
		mis, src = n, s
	}
	c := evalMinISR(st.rf, mis)
	c.ID = id
	c.Observed = fmt.Sprintf("%s=%d (%s), replication factor %d", cfgMinISR, mis, sourceName(src), st.rf)
	if c.Status != Pass {
		want := 2
		fix := r.alterTopic(st.name, cfgMinISR+"="+strconv.Itoa(want))
		if st.rf < goodReplication {
			fix = fmt.Sprintf("raise the replication factor to %d first (see topic.replication:%s), then %s", goodReplication, st.name, fix)
		}
		c.Fix = fix
	}
	r.add(c)
}

// evalMinISR judges min.insync.replicas against the replication factor; ID, Observed and Fix are left to the
// caller.
func evalMinISR(rf, mis int) Check {
	switch {
	case mis < 2:
		return Check{Status: Fail, Why: "acks=all waits for min.insync.replicas copies only: with 1, a record is acknowledged while it lives on one broker, and that broker failing loses it"}
	case mis > rf:
		return Check{Status: Fail, Why: "more in-sync replicas are required than exist, so every write with acks=all is refused and the sidecar cannot move records on"}
	case mis == rf:
		return Check{Status: Warn, Why: "every replica must be in sync: one broker down or restarting stops all writes with acks=all, and the sidecar pauses"}
	}
	return Check{Status: Pass, Why: "an acknowledged record is on at least 2 brokers, and one broker can be down without stopping writes"}
}

// uncleanCheck reports topic.unclean_election: an out-of-sync replica must never become leader.
func (r *run) uncleanCheck(st *topicState) {
	id := "topic.unclean_election:" + st.name
	if c, bad := r.configUnreadable(id, st); bad {
		r.add(c)
		return
	}
	c := Check{ID: id, Why: "an unclean election makes an out-of-sync replica leader, silently dropping records that were acknowledged"}
	v, src, ok := configValue(st.configs, cfgUnclean)
	switch {
	case !ok:
		c.Status, c.Observed = Pass, cfgUnclean+" not reported (Kafka's default is false)"
	case strings.EqualFold(strings.TrimSpace(v), "true"):
		c.Status, c.Observed = Fail, fmt.Sprintf("%s=true (%s)", cfgUnclean, sourceName(src))
		// A topic override wins over every broker-level setting, so it fixes the topic whatever the source.
		c.Fix = r.alterTopic(st.name, cfgUnclean+"=false")
		if src != kmsg.ConfigSourceDynamicTopicConfig {
			c.Fix += fmt.Sprintf("; also set %s=false where it comes from (%s) so other topics are safe", cfgUnclean, sourceName(src))
		}
	default:
		c.Status, c.Observed = Pass, fmt.Sprintf("%s=%s (%s)", cfgUnclean, v, sourceName(src))
	}
	r.add(c)
}

// retentionSettings are the deletion settings of one topic.
type retentionSettings struct {
	retentionMs    int64 // -1 means forever
	retentionBytes int64 // -1 means no size limit
	cleanupPolicy  string
	source         kmsg.ConfigSource
}

// readRetention reads the deletion settings, with Kafka's defaults for what the broker does not report.
func readRetention(rc *kadm.ResourceConfig) (retentionSettings, error) {
	rs := retentionSettings{retentionMs: kafkaDefaultRetentionMs, retentionBytes: -1, cleanupPolicy: "delete", source: kmsg.ConfigSourceDefaultConfig}
	if v, s, ok := configValue(rc, cfgRetentionMs); ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return rs, fmt.Errorf("%s=%q is not a number", cfgRetentionMs, v)
		}
		rs.retentionMs, rs.source = n, s
	}
	if v, _, ok := configValue(rc, cfgRetentionBytes); ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return rs, fmt.Errorf("%s=%q is not a number", cfgRetentionBytes, v)
		}
		rs.retentionBytes = n
	}
	if v, _, ok := configValue(rc, cfgCleanupPolicy); ok {
		rs.cleanupPolicy = strings.TrimSpace(v)
	}
	return rs, nil
}

// deletes reports whether the policy deletes by time/size (compaction alone keeps the latest record per key).
func (rs retentionSettings) deletes() bool {
	for _, p := range strings.Split(rs.cleanupPolicy, ",") {
		if strings.TrimSpace(p) == "delete" {
			return true
		}
	}
	return false
}

func (rs retentionSettings) observed() string {
	ret := "forever"
	if rs.retentionMs >= 0 {
		ret = formatDuration(time.Duration(rs.retentionMs) * time.Millisecond)
	}
	s := fmt.Sprintf("%s=%d (%s, %s), %s=%s", cfgRetentionMs, rs.retentionMs, ret, sourceName(rs.source), cfgCleanupPolicy, rs.cleanupPolicy)
	if rs.retentionBytes >= 0 {
		s += fmt.Sprintf(", %s=%d", cfgRetentionBytes, rs.retentionBytes)
	}
	return s
}

// finding is one reason a check is not PASS; a check reports the worst of its findings.
type finding struct {
	status   Status
	why, fix string
}

// combine turns findings into the check's status, why and fix; with none it passes with passWhy.
func combine(c Check, passWhy string, fs []finding) Check {
	c.Status, c.Why = Pass, passWhy
	var whys, fixes []string
	for _, f := range fs {
		if f.status.severity() > c.Status.severity() {
			c.Status = f.status
		}
	}
	for _, f := range fs {
		whys = append(whys, f.why)
		if f.fix != "" && !slices.Contains(fixes, f.fix) {
			fixes = append(fixes, f.fix)
		}
	}
	if len(fs) > 0 {
		c.Why = strings.Join(whys, "; ")
		c.Fix = strings.Join(fixes, "; ")
	}
	return c
}

// retentionCheck reports topic.retention for source and retry topics.
func (r *run) retentionCheck(st *topicState) {
	id := "topic.retention:" + st.name
	if c, bad := r.configUnreadable(id, st); bad {
		r.add(c)
		return
	}
	rs, err := readRetention(st.configs)
	if err != nil {
		r.add(Check{ID: id, Status: Warn, Observed: err.Error(), Why: "the setting could not be checked"})
		return
	}
	need := r.retryPath()
	dedupTTL := time.Duration(0)
	if r.cfg.Dedup == config.DedupRedis || r.cfg.Dedup == config.DedupMemory {
		dedupTTL = r.cfg.DedupTTL
	}
	c := Check{ID: id, Observed: rs.observed()}
	fs := evalRetention(rs, st.role, need, dedupTTL)
	for i := range fs {
		fs[i].fix = strings.ReplaceAll(fs[i].fix, "{alter}", r.alterTopic(st.name, ""))
	}
	r.add(combine(c, fmt.Sprintf("records stay longer than a record's path through the retries (%s) and longer than an outage of a day", formatDuration(need)), fs))
}

// retryPath is the least time a record may need on the cluster: every retry delay plus the shutdown drain.
func (r *run) retryPath() time.Duration {
	need := r.cfg.ShutdownTimeout
	for _, d := range r.cfg.RetryDelays {
		need += d
	}
	return need
}

// evalRetention judges a source or retry topic's deletion settings. need is the retry path, dedupTTL the
// life of a done mark (0 without dedup). A fix may hold "{alter}", the kafka-configs.sh prefix for the topic.
func evalRetention(rs retentionSettings, ro role, need, dedupTTL time.Duration) []finding {
	var fs []finding
	if !rs.deletes() {
		f := finding{
			why: "cleanup.policy=" + rs.cleanupPolicy + " keeps only the latest record per key: records not yet consumed can be compacted away",
			fix: "{alter}" + cfgCleanupPolicy + "=delete",
		}
		f.status = Warn
		if ro == roleRetry {
			// Retry copies of different messages share keys; compaction would drop all but one of them.
			f.status = Fail
		}
		return append(fs, f)
	}
	forever := rs.retentionMs < 0
	ret := time.Duration(rs.retentionMs) * time.Millisecond
	switch {
	case !forever && ret < need:
		fs = append(fs, finding{status: Fail,
			why: fmt.Sprintf("records are deleted after %s, before a record's path through the retry delays and the shutdown drain (%s) ends", formatDuration(ret), formatDuration(need)),
			fix: "{alter}" + cfgRetentionMs + "=" + strconv.FormatInt(max(7*comfortableRetention, 2*need).Milliseconds(), 10)})
	case !forever && ret < comfortableRetention:
		fs = append(fs, finding{status: Warn,
			why: fmt.Sprintf("records are deleted after %s: an app or sidecar outage longer than that loses the records waiting behind it", formatDuration(ret)),
			fix: "{alter}" + cfgRetentionMs + "=" + strconv.FormatInt((7*comfortableRetention).Milliseconds(), 10)})
	}
	if rs.retentionBytes > 0 {
		fs = append(fs, finding{status: Warn,
			why: fmt.Sprintf("retention.bytes=%d deletes by size whatever the age: a burst larger than that loses records the sidecar has not consumed yet", rs.retentionBytes),
			fix: "{alter}" + cfgRetentionBytes + "=-1"})
	}
	if dedupTTL > 0 && (forever || ret > dedupTTL) {
		kept := "forever"
		if !forever {
			kept = formatDuration(ret)
		}
		fs = append(fs, finding{status: Warn,
			why: fmt.Sprintf("records are kept %s but done marks only %s: a record read again after its mark expired (offsets reset, a replay) is delivered again", kept, formatDuration(dedupTTL)),
			fix: "raise SIDECAR_DEDUP_TTL above the retention plus the longest retry delay, or keep records for less than the done marks: {alter}" +
				cfgRetentionMs + "=" + strconv.FormatInt(max(dedupTTL-need, comfortableRetention).Milliseconds(), 10)})
	}
	return fs
}

// dlqRetentionCheck reports dlq.retention: dead letters must stay 21 days or more.
func (r *run) dlqRetentionCheck(st *topicState) {
	id := "dlq.retention:" + st.name
	if c, bad := r.configUnreadable(id, st); bad {
		r.add(c)
		return
	}
	rs, err := readRetention(st.configs)
	if err != nil {
		r.add(Check{ID: id, Status: Warn, Observed: err.Error(), Why: "the setting could not be checked"})
		return
	}
	fs := evalDLQRetention(rs)
	for i := range fs {
		fs[i].fix = strings.ReplaceAll(fs[i].fix, "{alter}", r.alterTopic(st.name, ""))
	}
	r.add(combine(Check{ID: id, Observed: rs.observed()}, "dead letters stay 21 days or more: time to notice, investigate and replay them", fs))
}

// evalDLQRetention judges the dead-letter topic's deletion settings.
func evalDLQRetention(rs retentionSettings) []finding {
	keep := "{alter}" + cfgRetentionMs + "=" + strconv.FormatInt((4*7*24*time.Hour).Milliseconds(), 10)
	var fs []finding
	if !rs.deletes() {
		return append(fs, finding{status: Fail,
			why: "cleanup.policy=" + rs.cleanupPolicy + " keeps only the latest dead letter per key: earlier ones are lost before anyone sees them",
			fix: "{alter}" + cfgCleanupPolicy + "=delete"})
	}
	if rs.retentionMs >= 0 && time.Duration(rs.retentionMs)*time.Millisecond < dlqMinRetention {
		fs = append(fs, finding{status: Fail,
			why: fmt.Sprintf("dead letters are deleted after %s, less than 21 days: they can be gone before anyone investigates or replays them", formatDuration(time.Duration(rs.retentionMs)*time.Millisecond)),
			fix: keep})
	}
	if rs.retentionBytes > 0 {
		fs = append(fs, finding{status: Warn,
			why: fmt.Sprintf("retention.bytes=%d deletes dead letters by size: a burst of failures pushes older ones out early", rs.retentionBytes),
			fix: "{alter}" + cfgRetentionBytes + "=-1"})
	}
	return fs
}

// groupOffsetsCheck reports group.offsets_retained for each consumed topic: a committed offset below the log
// start offset means records were deleted before the group processed them.
func (r *run) groupOffsetsCheck(ctx context.Context, states []*topicState) {
	var consumed []*topicState
	var names []string
	for _, st := range states {
		if st.exists && st.role != roleDLQ {
			consumed = append(consumed, st)
			names = append(names, st.name)
		}
	}
	if len(consumed) == 0 {
		return
	}
	why := "records below the log start offset were deleted by retention before this group processed them"
	sctx, cancel := step(ctx)
	committed, ferr := r.deps.Admin.FetchOffsets(sctx, r.cfg.KafkaGroup)
	cancel()
	var starts kadm.ListedOffsets
	var lerr error
	if ferr == nil {
		sctx, cancel = step(ctx)
		starts, lerr = r.deps.Admin.ListStartOffsets(sctx, names...)
		cancel()
	}
	for _, st := range consumed {
		id := "group.offsets_retained:" + st.name
		switch {
		case ferr != nil && notPermitted(ferr):
			r.add(r.notPermittedGroupCheck(id, ferr))
			continue
		case errors.Is(ferr, kerr.GroupIDNotFound):
			// A group that never committed has nothing retention could have taken from it yet.
			r.add(Check{ID: id, Status: Pass, Observed: "the group has no committed offsets yet", Why: why})
			continue
		case ferr != nil:
			r.add(Check{ID: id, Status: Warn, Observed: "cannot fetch the group's offsets: " + describeErr(ferr), Why: why,
				Fix: "run doctor again; check the broker logs if this persists"})
			continue
		}
		if _, ok := starts[st.name]; !ok && lerr != nil {
			c := Check{ID: id, Status: Warn, Observed: "cannot list the log start offsets: " + describeErr(lerr), Why: why}
			if notPermitted(lerr) {
				c = r.notPermittedCheck(id, st.name, "Describe", lerr)
			}
			r.add(c)
			continue
		}
		r.add(r.evalGroupOffsets(id, st.name, committed[st.name], starts[st.name], why))
	}
}

// evalGroupOffsets compares one topic's committed offsets with its log start offsets.
func (r *run) evalGroupOffsets(id, topic string, committed map[int32]kadm.OffsetResponse, starts map[int32]kadm.ListedOffset, why string) Check {
	c := Check{ID: id, Why: why}
	var behind []string
	var lost int64
	compared := 0
	partitions := make([]int32, 0, len(committed))
	for p := range committed {
		partitions = append(partitions, p)
	}
	slices.Sort(partitions)
	for _, p := range partitions {
		o := committed[p]
		start, ok := starts[p]
		if o.Err != nil || o.At < 0 || !ok || start.Err != nil || start.Offset < 0 {
			continue
		}
		compared++
		if o.At < start.Offset {
			n := start.Offset - o.At
			lost += n
			behind = append(behind, fmt.Sprintf("partition %d committed %d < log start %d (%d records)", p, o.At, start.Offset, n))
		}
	}
	switch {
	case len(behind) > 0:
		c.Status = Fail
		c.Observed = fmt.Sprintf("%d records lost to retention: %s", lost, strings.Join(behind, "; "))
		c.Fix = fmt.Sprintf("the records are gone (find them upstream if they matter); keep it from recurring by raising retention.ms of %s above the longest time the group can fall behind (%s), and alert on kafka_sidecar_consumer_lag",
			topic, r.alterTopic(topic, cfgRetentionMs+"=<ms>"))
	case compared == 0:
		c.Status = Pass
		c.Observed = "no committed offsets yet (the group starts at SIDECAR_KAFKA_START_OFFSET=" + r.cfg.KafkaStartOffset + ")"
		c.Why = "a group with no commit has nothing to lose to retention yet"
	default:
		c.Status = Pass
		c.Observed = plural(compared, "partition") + " committed at or past the log start"
		c.Why = "every committed offset still points at a record that exists"
	}
	return c
}

// notPermittedCheck is the WARN for a refused topic describe.
func (r *run) notPermittedCheck(id, topic, operation string, err error) Check {
	return Check{ID: id, Status: Warn,
		Observed: "not permitted to describe (" + describeErr(err) + ")",
		Why:      "the sidecar's credentials lack the rights to read this setting, so the audit cannot check it",
		Fix: fmt.Sprintf("grant %s on the topic to the sidecar's principal: kafka-acls.sh %s --add --allow-principal User:%s --operation %s --topic %s",
			operation, r.bootstrap(), r.principal(), operation, topic)}
}

// notPermittedGroupCheck is the WARN for a refused group describe.
func (r *run) notPermittedGroupCheck(id string, err error) Check {
	return Check{ID: id, Status: Warn,
		Observed: "not permitted to describe the group (" + describeErr(err) + ")",
		Why:      "the sidecar's credentials lack the rights to read the group's offsets, so the audit cannot check them",
		Fix: fmt.Sprintf("grant Describe on the group: kafka-acls.sh %s --add --allow-principal User:%s --operation Describe --group %s",
			r.bootstrap(), r.principal(), r.cfg.KafkaGroup)}
}

// alterTopic is the kafka-configs.sh command setting one topic config; with an empty setting it is the prefix
// a finding's fix completes.
func (r *run) alterTopic(topic, setting string) string {
	return fmt.Sprintf("kafka-configs.sh %s --alter --entity-type topics --entity-name %s --add-config %s", r.bootstrap(), topic, setting)
}

// bootstrap is the --bootstrap-server argument of the Kafka CLI tools, with the client config they need when
// the cluster requires TLS or SASL.
func (r *run) bootstrap() string {
	s := "--bootstrap-server " + strings.Join(r.cfg.KafkaBrokers, ",")
	if r.cfg.KafkaTLSEnabled || r.cfg.KafkaSASLMechanism != "" {
		s += " --command-config client.properties"
	}
	return s
}

// principal names the sidecar's Kafka user for ACL commands.
func (r *run) principal() string {
	if r.cfg.KafkaSASLUsername != "" {
		return r.cfg.KafkaSASLUsername
	}
	return "<sidecar-user>"
}

// formatDuration prints a duration in the largest whole unit that reads naturally ("7d", "36h", "90s").
func formatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d >= day && d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	case d >= time.Hour && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d >= time.Minute && d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// plural writes a count with its noun, adding "s" unless the count is one.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
