package connect

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kafka-sidecar/kafka-sidecar/config"
)

// Redis client settings. The dedup store runs one short pipeline per batch of records; the timeouts make an
// unreachable Redis surface within a couple of seconds (the sidecar then pauses) instead of hanging deliveries.
const (
	redisDialTimeout  = 2 * time.Second
	redisReadTimeout  = time.Second
	redisWriteTimeout = time.Second
	// redisPoolTimeout bounds the wait for a free connection when every one is busy.
	redisPoolTimeout = 2 * time.Second
	// redisPoolSize serves ~16 concurrent pipelines plus single commands (health checks, releases) without
	// queueing; redisPipelinePoolSize keeps 16 pipelines on their dedicated pool.
	redisPoolSize         = 32
	redisPipelinePoolSize = 16
	// redisPipelineBufferSize keeps pipeline buffers at the regular size: dedup pipelines carry short keys,
	// and go-redis's 128 KiB default would cost 4 MiB for 16 connections for nothing.
	redisPipelineBufferSize = 32 * 1024
)

// Default ports of the HA forms when a host in the URL names none.
const (
	defaultSentinelPort = "26379"
	defaultRedisPort    = "6379"
)

// Redis URL schemes accepted by SIDECAR_REDIS_URL.
const (
	SchemeRedis       = "redis"
	SchemeRedisTLS    = "rediss"
	SchemeSentinel    = "redis-sentinel"
	SchemeSentinelTLS = "rediss-sentinel"
	SchemeCluster     = "redis-cluster"
	SchemeClusterTLS  = "rediss-cluster"
)

// Query options of redis-sentinel:// URLs.
const (
	sentinelDBOption   = "db"
	sentinelAuthOption = "sentinel_auth"
	sentinelAuthSame   = "same"
	sentinelAuthNone   = "none"
)

// errNoURL is returned when SIDECAR_REDIS_URL is empty but a Redis client is asked for.
var errNoURL = errors.New("SIDECAR_REDIS_URL: is empty (set a redis:// or rediss:// URL)")

const schemesForErrorMessage = "redis://, rediss://, redis-sentinel://, rediss-sentinel://, redis-cluster:// or rediss-cluster://"

// Redis returns a client for the dedup store named by SIDECAR_REDIS_URL:
//
//   - redis://[user:pass@]host:port[/db][?option=value] and rediss:// (TLS): one server, parsed by
//     redis.ParseURL, so its query options (dial_timeout, pool_size, ...) work;
//   - redis-sentinel://[user:pass@]host:port,host:port/<master>[?db=N] and rediss-sentinel://: a failover
//     client asking the Sentinels for the master. The credentials authenticate to the data nodes and, unless
//     the URL says ?sentinel_auth=none, to the Sentinels too (the usual set-up protects both with one password);
//   - redis-cluster://[user:pass@]host:port,host:port and rediss-cluster://: a Redis Cluster client.
//
// SIDECAR_REDIS_PASSWORD_FILE, read now, replaces the URL's password. With TLS, SIDECAR_REDIS_TLS_CA_FILE
// replaces the system roots and SIDECAR_REDIS_TLS_CERT_FILE/_KEY_FILE add a client certificate; setting them
// with a plaintext scheme is an error rather than a silently unencrypted connection.
//
// Dial, read and write timeouts default to 2s, 1s and 1s and the pool serves ~16 concurrent pipelines; URL
// options of the single-server form override them. The client does not connect until first used. Errors name
// the variable and never contain the password.
func Redis(cfg *config.Config) (redis.UniversalClient, error) {
	s, err := redisSetupFrom(cfg)
	if err != nil {
		return nil, err
	}
	return s.client(), nil
}

// redisSetup holds the options of exactly one client kind.
type redisSetup struct {
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

func (s redisSetup) client() redis.UniversalClient {
	switch {
	case s.failover != nil:
		return redis.NewFailoverClient(s.failover)
	case s.cluster != nil:
		return redis.NewClusterClient(s.cluster)
	}
	return redis.NewClient(s.single)
}

// redisSetupFrom parses and checks everything Redis needs; errors are scrubbed of secrets.
func redisSetupFrom(cfg *config.Config) (redisSetup, error) {
	if cfg == nil {
		return redisSetup{}, errors.New("building the redis client: no configuration")
	}
	var filePass string
	s, err := func() (redisSetup, error) {
		raw := cfg.RedisURL.Reveal()
		if raw == "" {
			return redisSetup{}, errNoURL
		}
		var err error
		if filePass, err = readPasswordFile(cfg.RedisPasswordFile); err != nil {
			return redisSetup{}, err
		}
		scheme, _, found := strings.Cut(raw, "://")
		if !found {
			return redisSetup{}, fmt.Errorf("SIDECAR_REDIS_URL: %s has no scheme: use %s", RedactURL(raw), schemesForErrorMessage)
		}
		scheme = strings.ToLower(scheme)
		useTLS := strings.HasPrefix(scheme, SchemeRedisTLS)
		tc, err := redisTLSConfig(cfg, useTLS)
		if err != nil {
			return redisSetup{}, err
		}
		switch scheme {
		case SchemeRedis, SchemeRedisTLS:
			return singleSetup(raw, tc, filePass)
		case SchemeSentinel, SchemeSentinelTLS:
			return sentinelSetup(raw, tc, filePass)
		case SchemeCluster, SchemeClusterTLS:
			return clusterSetup(raw, tc, filePass)
		}
		return redisSetup{}, fmt.Errorf("SIDECAR_REDIS_URL: scheme %q is not %s", scheme, schemesForErrorMessage)
	}()
	if err != nil {
		return redisSetup{}, scrub(err, cfg, filePass)
	}
	return s, nil
}

// readPasswordFile returns the password SIDECAR_REDIS_PASSWORD_FILE names, without a trailing newline.
func readPasswordFile(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("SIDECAR_REDIS_PASSWORD_FILE: reading the password: %w", err)
	}
	pass := strings.TrimRight(string(b), "\r\n")
	if pass == "" {
		return "", fmt.Errorf("SIDECAR_REDIS_PASSWORD_FILE: %s is empty", path)
	}
	return pass, nil
}

// redisTLSConfig builds the TLS configuration for a rediss scheme, leaving ServerName empty: crypto/tls then
// verifies each server against the address it was dialled at, which is what several hosts need.
func redisTLSConfig(cfg *config.Config, useTLS bool) (*tls.Config, error) {
	if !useTLS {
		for _, v := range []struct{ name, val string }{
			{"SIDECAR_REDIS_TLS_CA_FILE", cfg.RedisTLSCAFile},
			{"SIDECAR_REDIS_TLS_CERT_FILE", cfg.RedisTLSCertFile},
			{"SIDECAR_REDIS_TLS_KEY_FILE", cfg.RedisTLSKeyFile},
		} {
			if v.val != "" {
				return nil, fmt.Errorf("%s is set but SIDECAR_REDIS_URL does not use TLS: use a rediss scheme or unset %s", v.name, v.name)
			}
		}
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.RedisTLSCAFile != "" {
		pool, err := loadCAPool("SIDECAR_REDIS_TLS_CA_FILE", cfg.RedisTLSCAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	pair, err := loadKeyPair("SIDECAR_REDIS_TLS_CERT_FILE", cfg.RedisTLSCertFile, "SIDECAR_REDIS_TLS_KEY_FILE", cfg.RedisTLSKeyFile)
	if err != nil {
		return nil, err
	}
	if pair != nil {
		tc.Certificates = []tls.Certificate{*pair}
	}
	return tc, nil
}

// singleSetup parses redis:// and rediss:// with go-redis's own parser.
func singleSetup(raw string, tc *tls.Config, filePass string) (redisSetup, error) {
	o, err := redis.ParseURL(raw)
	if err != nil {
		return redisSetup{}, fmt.Errorf("SIDECAR_REDIS_URL: parsing %s: %w", RedactURL(raw), innerURLError(err))
	}
	if tc != nil {
		// ParseURL set ServerName to the host and honoured ?skip_verify; keep both.
		if o.TLSConfig != nil {
			tc.ServerName = o.TLSConfig.ServerName
			tc.InsecureSkipVerify = o.TLSConfig.InsecureSkipVerify
		}
		o.TLSConfig = tc
	}
	if filePass != "" {
		o.Password = filePass
	}
	o.ContextTimeoutEnabled = true
	setDefault(&o.DialTimeout, redisDialTimeout)
	setDefault(&o.ReadTimeout, redisReadTimeout)
	setDefault(&o.WriteTimeout, redisWriteTimeout)
	setDefault(&o.PoolTimeout, redisPoolTimeout)
	setDefault(&o.PoolSize, redisPoolSize)
	setDefault(&o.PipelinePoolSize, redisPipelinePoolSize)
	setDefault(&o.PipelineReadBufferSize, redisPipelineBufferSize)
	setDefault(&o.PipelineWriteBufferSize, redisPipelineBufferSize)
	return redisSetup{single: o}, nil
}

// haURL is the parsed form of a redis-sentinel:// or redis-cluster:// URL.
type haURL struct {
	hosts    []string
	user     string
	pass     string
	hasPass  bool
	path     string
	query    url.Values
	redacted string
}

// parseHAURL splits an HA URL, scheme://[user[:pass]@]host[:port],host[:port][/path][?query], into its hosts
// (with defaultPort added where a host has none), credentials, path and query. It does not use net/url: that
// takes the text after the last colon of the host list as one port and so rejects a last host without a port.
func parseHAURL(raw, defaultPort string) (haURL, error) {
	redacted := RedactURL(raw)
	_, rest, found := strings.Cut(raw, "://")
	if !found {
		return haURL{}, fmt.Errorf("SIDECAR_REDIS_URL: %s has no scheme", redacted)
	}
	if strings.Contains(rest, "#") {
		return haURL{}, fmt.Errorf("SIDECAR_REDIS_URL: %s has a fragment (#...), which means nothing here", redacted)
	}
	h := haURL{redacted: redacted}
	rest, rawQuery, _ := strings.Cut(rest, "?")
	var err error
	if h.query, err = url.ParseQuery(rawQuery); err != nil {
		return haURL{}, fmt.Errorf("SIDECAR_REDIS_URL: parsing the query of %s: %w", redacted, err)
	}
	authority := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, h.path = rest[:i], rest[i:]
	}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		var userinfo string
		userinfo, authority = authority[:at], authority[at+1:]
		user, pass, hasPass := strings.Cut(userinfo, ":")
		if h.user, err = url.PathUnescape(user); err != nil {
			return haURL{}, fmt.Errorf("SIDECAR_REDIS_URL: the user name of %s has a bad %%-escape", redacted)
		}
		if h.pass, err = url.PathUnescape(pass); err != nil {
			// The error would quote the password.
			return haURL{}, fmt.Errorf("SIDECAR_REDIS_URL: the password of %s has a bad %%-escape", redacted)
		}
		h.hasPass = hasPass
	}
	if authority == "" {
		return haURL{}, fmt.Errorf("SIDECAR_REDIS_URL: %s names no host", redacted)
	}
	for _, host := range strings.Split(authority, ",") {
		host = strings.TrimSpace(host)
		if host == "" {
			return haURL{}, fmt.Errorf("SIDECAR_REDIS_URL: %s has an empty host in its host list", redacted)
		}
		addr, err := withPort(host, defaultPort)
		if err != nil {
			return haURL{}, fmt.Errorf("SIDECAR_REDIS_URL: host %q of %s: %w", host, redacted, err)
		}
		h.hosts = append(h.hosts, addr)
	}
	return h, nil
}

// withPort returns host:port, adding defaultPort to a bare host and checking the port is a number.
func withPort(host, defaultPort string) (string, error) {
	name, port, err := net.SplitHostPort(host)
	if err != nil {
		// A bare name (or bracketed IPv6 literal) has no port to split off.
		if strings.Contains(strings.Trim(host, "[]"), ":") && !strings.HasPrefix(host, "[") {
			return "", fmt.Errorf("is not host:port")
		}
		name, port = strings.Trim(host, "[]"), defaultPort
	}
	if name == "" {
		return "", fmt.Errorf("has no host name")
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("port %q is not a number in 1..65535", port)
	}
	addr := net.JoinHostPort(name, port)
	// Stray brackets survive the steps above; the dialer would reject the address later and less clearly.
	if _, _, err := net.SplitHostPort(addr); err != nil || strings.ContainsAny(name, "[]/ ") {
		return "", fmt.Errorf("is not host:port")
	}
	return addr, nil
}

// sentinelSetup builds a failover client's options from redis-sentinel://hosts/<master>[?db=N].
func sentinelSetup(raw string, tc *tls.Config, filePass string) (redisSetup, error) {
	h, err := parseHAURL(raw, defaultSentinelPort)
	if err != nil {
		return redisSetup{}, err
	}
	master := strings.Trim(h.path, "/")
	if master == "" || strings.Contains(master, "/") {
		return redisSetup{}, fmt.Errorf("SIDECAR_REDIS_URL: %s must name the Sentinel master as its path, e.g. redis-sentinel://host:26379,host:26379/mymaster", h.redacted)
	}
	db := 0
	sentinelAuth := sentinelAuthSame
	for _, key := range slices.Sorted(maps.Keys(h.query)) {
		vals := h.query[key]
		val := vals[len(vals)-1]
		switch key {
		case sentinelDBOption:
			if db, err = strconv.Atoi(val); err != nil || db < 0 {
				return redisSetup{}, fmt.Errorf("SIDECAR_REDIS_URL: db=%q is not a database number", val)
			}
		case sentinelAuthOption:
			if val != sentinelAuthSame && val != sentinelAuthNone {
				return redisSetup{}, fmt.Errorf("SIDECAR_REDIS_URL: sentinel_auth=%q is not %s or %s", val, sentinelAuthSame, sentinelAuthNone)
			}
			sentinelAuth = val
		default:
			return redisSetup{}, fmt.Errorf("SIDECAR_REDIS_URL: unknown option %q (redis-sentinel:// accepts db and sentinel_auth)", key)
		}
	}
	pass := h.pass
	if filePass != "" {
		pass = filePass
	}
	o := &redis.FailoverOptions{
		MasterName:              master,
		SentinelAddrs:           h.hosts,
		Username:                h.user,
		Password:                pass,
		DB:                      db,
		TLSConfig:               tc,
		ContextTimeoutEnabled:   true,
		DialTimeout:             redisDialTimeout,
		ReadTimeout:             redisReadTimeout,
		WriteTimeout:            redisWriteTimeout,
		PoolTimeout:             redisPoolTimeout,
		PoolSize:                redisPoolSize,
		PipelinePoolSize:        redisPipelinePoolSize,
		PipelineReadBufferSize:  redisPipelineBufferSize,
		PipelineWriteBufferSize: redisPipelineBufferSize,
	}
	if sentinelAuth == sentinelAuthSame {
		o.SentinelUsername, o.SentinelPassword = h.user, pass
	}
	return redisSetup{failover: o}, nil
}

// clusterSetup builds a cluster client's options from redis-cluster://hosts.
func clusterSetup(raw string, tc *tls.Config, filePass string) (redisSetup, error) {
	h, err := parseHAURL(raw, defaultRedisPort)
	if err != nil {
		return redisSetup{}, err
	}
	// Redis Cluster has database 0 only; a path would be a mistake the user wants to hear about.
	if p := strings.Trim(h.path, "/"); p != "" && p != "0" {
		return redisSetup{}, fmt.Errorf("SIDECAR_REDIS_URL: %s: Redis Cluster has only database 0, remove the path", h.redacted)
	}
	if len(h.query) > 0 {
		return redisSetup{}, fmt.Errorf("SIDECAR_REDIS_URL: unknown option %q (redis-cluster:// takes no options)",
			slices.Sorted(maps.Keys(h.query))[0])
	}
	pass := h.pass
	if filePass != "" {
		pass = filePass
	}
	o := &redis.ClusterOptions{
		Addrs:                   h.hosts,
		Username:                h.user,
		Password:                pass,
		TLSConfig:               tc,
		ContextTimeoutEnabled:   true,
		DialTimeout:             redisDialTimeout,
		ReadTimeout:             redisReadTimeout,
		WriteTimeout:            redisWriteTimeout,
		PoolTimeout:             redisPoolTimeout,
		PoolSize:                redisPoolSize,
		PipelinePoolSize:        redisPipelinePoolSize,
		PipelineReadBufferSize:  redisPipelineBufferSize,
		PipelineWriteBufferSize: redisPipelineBufferSize,
	}
	return redisSetup{cluster: o}, nil
}

// innerURLError drops the *url.Error wrapper, whose message quotes the whole URL with its password, and keeps
// the reason.
func innerURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// setDefault sets *v to def when the URL left it at zero.
func setDefault[T int | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}
