package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/connect"
	"github.com/kafka-sidecar/kafka-sidecar/dedup"
)

// stepTimeout bounds each network step, so one hung broker or Redis call cannot use up the whole run and
// leave the other checks unreported.
const stepTimeout = 10 * time.Second

// RedisAuditor is what the audit asks of the dedup store's Redis; *dedup.RedisInspector is one.
type RedisAuditor interface {
	// Ping reports whether Redis answers.
	Ping(ctx context.Context) error
	// Servers reads the persistence, memory and eviction settings of every server behind the client.
	Servers(ctx context.Context) ([]dedup.RedisServer, error)
}

// Deps is what Run audits. Only Config is required; a missing client or probe leaves its checks out, except
// Admin, whose absence is a FAIL (there is no audit without Kafka), and Redis when SIDECAR_DEDUP=redis.
type Deps struct {
	// Config is the sidecar's configuration: topics, group, retry delays, dedup settings.
	Config *config.Config
	// Admin talks to the cluster; build it from connect.KafkaOpts.
	Admin *kadm.Client
	// Redis inspects the dedup store's servers, nil when SIDECAR_DEDUP is not redis
	// (dedup.NewRedisInspector makes one from the store's client).
	Redis RedisAuditor
	// AppProbe checks that SIDECAR_APP_URL answers; nil leaves app.reachable out.
	AppProbe func(ctx context.Context) error
	// HealthProbe checks that SIDECAR_APP_HEALTH_URL answers 2xx; nil leaves app.health out.
	HealthProbe func(ctx context.Context) error
	// Registry is the schema registry client; with SIDECAR_DECODE=json a nil one is a FAIL.
	Registry SubjectLister
	// Now is the clock the Redis latency is measured with; nil means time.Now.
	Now func() time.Time
}

// Run performs every check and returns the report. It never panics on a broken dependency and returns once ctx
// ends, reporting what it could not finish as FAIL or WARN. It is safe to call concurrently with distinct Deps.
func Run(ctx context.Context, deps Deps) Report {
	r := &run{deps: deps, now: deps.Now}
	if r.now == nil {
		r.now = time.Now
	}
	if deps.Config == nil {
		r.add(Check{ID: "config", Status: Fail, Observed: "no configuration", Why: "the audit compares the cluster with the configuration", Fix: "set the SIDECAR_* variables"})
		return r.report()
	}
	r.cfg = deps.Config
	r.kafkaChecks(ctx)
	r.dedupChecks(ctx)
	r.appChecks(ctx)
	r.registryChecks(ctx)
	return r.report()
}

// run carries one audit's state.
type run struct {
	deps   Deps
	cfg    *config.Config
	now    func() time.Time
	checks []Check
}

func (r *run) add(c Check) { r.checks = append(r.checks, c) }

// report scrubs every configured secret from the checks: library errors quoted in Observed could hold one.
func (r *run) report() Report {
	secrets := r.secrets()
	out := make([]Check, len(r.checks))
	for i, c := range r.checks {
		for _, s := range secrets {
			c.Observed = strings.ReplaceAll(c.Observed, s, "xxxxx")
			c.Why = strings.ReplaceAll(c.Why, s, "xxxxx")
			c.Fix = strings.ReplaceAll(c.Fix, s, "xxxxx")
		}
		out[i] = c
	}
	return Report{Checks: out}
}

// secrets lists the configuration's secrets in the forms they could be quoted in.
func (r *run) secrets() []string {
	if r.cfg == nil {
		return nil
	}
	var raw []string
	raw = append(raw, r.cfg.KafkaSASLPassword.Reveal(), r.cfg.SchemaRegistryPassword.Reveal())
	raw = append(raw, urlPassword(r.cfg.RedisURL.Reveal()))
	var out []string
	for _, s := range raw {
		if s != "" {
			out = append(out, s, url.QueryEscape(s), url.PathEscape(s))
		}
	}
	return out
}

// urlPassword extracts the password of a URL's user info, also from the HA forms net/url cannot parse.
func urlPassword(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		p, _ := u.User.Password()
		return p
	}
	_, rest, _ := strings.Cut(raw, "://")
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	_, pass, _ := strings.Cut(rest[:at], ":")
	if p, err := url.PathUnescape(pass); err == nil {
		return p
	}
	return pass
}

// step returns a context for one network step, bounded by stepTimeout and by the run's context.
func step(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, stepTimeout)
}

// notPermitted reports whether err is an authorization refusal (ACLs), which the audit reports as a WARN: the
// sidecar may work without the describe rights the audit needs.
func notPermitted(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) ||
		errors.Is(err, kerr.ClusterAuthorizationFailed) ||
		errors.Is(err, kerr.GroupAuthorizationFailed)
}

// describeErr names an error compactly for Observed, without the URL noise some libraries add.
func describeErr(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer within the time limit (" + err.Error() + ")"
	}
	return err.Error()
}

// dedupChecks reports the dedup store choice and, for Redis, the server's settings.
func (r *run) dedupChecks(ctx context.Context) {
	switch r.cfg.Dedup {
	case config.DedupRedis:
		r.add(Check{ID: "dedup.store", Status: Pass, Observed: "redis",
			Why: "done marks and delivery leases are shared by every replica and survive a sidecar restart"})
		r.redisChecks(ctx)
	case config.DedupMemory:
		r.add(Check{ID: "dedup.store", Status: Warn, Observed: "memory",
			Why: "done marks live in one process: a restart, a rebalance or a second replica delivers records again, and two replicas can deliver one record at once",
			Fix: "run one replica only, or set SIDECAR_DEDUP=redis with SIDECAR_REDIS_URL"})
	default:
		r.add(Check{ID: "dedup.store", Status: Warn, Observed: r.cfg.Dedup,
			Why: "without dedup, every rebalance, restart or retry redelivers records the app may already have processed",
			Fix: "set SIDECAR_DEDUP=redis with SIDECAR_REDIS_URL, or make the app idempotent on the Idempotency-Key header"})
	}
}

// appChecks probes the app and its health URL.
func (r *run) appChecks(ctx context.Context) {
	if r.deps.AppProbe != nil {
		target := connect.RedactURL(r.cfg.AppURL)
		c := Check{ID: "app.reachable", Why: "records are delivered to SIDECAR_APP_URL; while it does not answer, delivery pauses and lag grows"}
		sctx, cancel := step(ctx)
		err := r.deps.AppProbe(sctx)
		cancel()
		if err != nil {
			c.Status, c.Observed = Fail, fmt.Sprintf("%s: %s", target, describeErr(err))
			c.Fix = "start the app, or point SIDECAR_APP_URL at the address it listens on"
		} else {
			c.Status, c.Observed = Pass, target+" answers"
		}
		r.add(c)
	}
	if r.deps.HealthProbe != nil {
		target := connect.RedactURL(r.cfg.AppHealthURL)
		c := Check{ID: "app.health", Why: "delivery pauses while SIDECAR_APP_HEALTH_URL does not answer 2xx, and /readyz reports not ready"}
		sctx, cancel := step(ctx)
		err := r.deps.HealthProbe(sctx)
		cancel()
		if err != nil {
			c.Status, c.Observed = Fail, fmt.Sprintf("%s: %s", target, describeErr(err))
			c.Fix = "make the health endpoint answer 2xx when the app can take records, or correct SIDECAR_APP_HEALTH_URL"
		} else {
			c.Status, c.Observed = Pass, target+" answers 2xx"
		}
		r.add(c)
	}
}
