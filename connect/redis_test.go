package connect

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kafka-sidecar/kafka-sidecar/config"
	"github.com/kafka-sidecar/kafka-sidecar/test/certs"
	"github.com/kafka-sidecar/kafka-sidecar/test/redistest"
)

func redisConfig(rawURL string) *config.Config {
	return &config.Config{Dedup: config.DedupRedis, RedisURL: config.Secret(rawURL)}
}

func TestRedisURLForms(t *testing.T) {
	tests := []struct {
		name  string
		url   string
		check func(t *testing.T, s redisSetup)
	}{
		{
			name: "single server with credentials and db",
			url:  "redis://" + userinfo("app", plantedPassword) + "@cache:6380/3",
			check: func(t *testing.T, s redisSetup) {
				o := mustSingle(t, s)
				if o.Addr != "cache:6380" || o.DB != 3 || o.Username != "app" || o.Password != plantedPassword {
					t.Fatalf("got addr %q db %d user %q, want cache:6380 db 3 user app with the password", o.Addr, o.DB, o.Username)
				}
				if o.TLSConfig != nil {
					t.Fatal("redis:// got TLS")
				}
				if o.DialTimeout != 2*time.Second || o.ReadTimeout != time.Second || o.WriteTimeout != time.Second {
					t.Fatalf("timeouts dial %v read %v write %v, want 2s/1s/1s", o.DialTimeout, o.ReadTimeout, o.WriteTimeout)
				}
				if o.PoolSize < 16 || o.PipelinePoolSize < 16 || !o.ContextTimeoutEnabled {
					t.Fatalf("pool %d pipeline pool %d context timeouts %v: want room for 16 pipelines and context deadlines honoured",
						o.PoolSize, o.PipelinePoolSize, o.ContextTimeoutEnabled)
				}
			},
		},
		{
			name: "single server over TLS, default port, URL options override defaults",
			url:  "rediss://cache.internal?dial_timeout=5s&pool_size=64",
			check: func(t *testing.T, s redisSetup) {
				o := mustSingle(t, s)
				if o.Addr != "cache.internal:6379" || o.TLSConfig == nil || o.TLSConfig.ServerName != "cache.internal" {
					t.Fatalf("got addr %q TLS %+v, want cache.internal:6379 verified as cache.internal", o.Addr, o.TLSConfig)
				}
				if o.TLSConfig.MinVersion != 0x0303 {
					t.Fatalf("TLS minimum version %x, want 1.2", o.TLSConfig.MinVersion)
				}
				if o.DialTimeout != 5*time.Second || o.PoolSize != 64 || o.ReadTimeout != time.Second {
					t.Fatalf("dial %v pool %d read %v, want the URL's 5s and 64 and the default 1s", o.DialTimeout, o.PoolSize, o.ReadTimeout)
				}
			},
		},
		{
			name: "sentinel with master, db and credentials",
			url:  "redis-sentinel://" + userinfo("app", plantedPassword) + "@s1:26379,s2:26380,s3/mymaster?db=2",
			check: func(t *testing.T, s redisSetup) {
				o := mustFailover(t, s)
				if want := []string{"s1:26379", "s2:26380", "s3:26379"}; !slices.Equal(o.SentinelAddrs, want) {
					t.Fatalf("sentinels %v, want %v", o.SentinelAddrs, want)
				}
				if o.MasterName != "mymaster" || o.DB != 2 || o.Username != "app" || o.Password != plantedPassword {
					t.Fatalf("master %q db %d user %q, want mymaster db 2 user app with the password", o.MasterName, o.DB, o.Username)
				}
				if o.SentinelUsername != "app" || o.SentinelPassword != plantedPassword {
					t.Fatal("sentinels do not get the URL's credentials by default")
				}
				if o.TLSConfig != nil || o.ReadTimeout != time.Second || o.PoolSize < 16 {
					t.Fatalf("TLS %v read %v pool %d, want plaintext, 1s, >= 16", o.TLSConfig, o.ReadTimeout, o.PoolSize)
				}
			},
		},
		{
			name: "sentinel over TLS without sentinel credentials",
			url:  "rediss-sentinel://:pw@s1:26379/cache?sentinel_auth=none",
			check: func(t *testing.T, s redisSetup) {
				o := mustFailover(t, s)
				if o.MasterName != "cache" || o.DB != 0 || o.Password != "pw" || o.SentinelPassword != "" {
					t.Fatalf("master %q db %d sentinel password set %v, want cache, db 0, no sentinel password", o.MasterName, o.DB, o.SentinelPassword != "")
				}
				if o.TLSConfig == nil || o.TLSConfig.ServerName != "" {
					t.Fatalf("TLS %+v, want TLS verified per dialled host", o.TLSConfig)
				}
			},
		},
		{
			name: "cluster",
			url:  "redis-cluster://app:pw@n1:7000,n2:7001,n3",
			check: func(t *testing.T, s redisSetup) {
				o := mustCluster(t, s)
				if want := []string{"n1:7000", "n2:7001", "n3:6379"}; !slices.Equal(o.Addrs, want) {
					t.Fatalf("nodes %v, want %v", o.Addrs, want)
				}
				if o.Username != "app" || o.Password != "pw" || o.TLSConfig != nil || o.WriteTimeout != time.Second {
					t.Fatalf("user %q TLS %v write %v, want app, plaintext, 1s", o.Username, o.TLSConfig, o.WriteTimeout)
				}
			},
		},
		{
			name: "cluster over TLS with a db 0 path",
			url:  "rediss-cluster://n1:7000/0",
			check: func(t *testing.T, s redisSetup) {
				if o := mustCluster(t, s); o.TLSConfig == nil || len(o.Addrs) != 1 {
					t.Fatalf("TLS %v nodes %v, want TLS and one node", o.TLSConfig, o.Addrs)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := redisSetupFrom(redisConfig(tt.url))
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			tt.check(t, s)
		})
	}
}

func TestRedisURLErrors(t *testing.T) {
	tests := []struct {
		name, url, want string
	}{
		{name: "empty", url: "", want: "SIDECAR_REDIS_URL: is empty"},
		{name: "no scheme", url: "cache:6379", want: "has no scheme"},
		{name: "unknown scheme", url: "memcache://u:" + plantedPassword + "@cache", want: `scheme "memcache" is not`},
		{name: "bad db", url: "redis://" + userinfo("u", plantedPassword) + "@cache/x", want: "invalid database number"},
		{name: "bad port", url: "redis://" + userinfo("u", plantedPassword) + "@cache:notaport/0", want: "SIDECAR_REDIS_URL: parsing"},
		{name: "unknown single option", url: "redis://cache?password=" + url.QueryEscape(plantedPassword), want: "unexpected option"},
		{name: "sentinel without master", url: "redis-sentinel://" + userinfo("u", plantedPassword) + "@s1:26379,s2:26379", want: "must name the Sentinel master"},
		{name: "sentinel bad db", url: "redis-sentinel://s1:26379/m?db=-1", want: `db="-1" is not a database number`},
		{name: "sentinel unknown option", url: "redis-sentinel://s1:26379/m?timeout=1s", want: `unknown option "timeout"`},
		{name: "sentinel bad auth option", url: "redis-sentinel://s1:26379/m?sentinel_auth=maybe", want: "sentinel_auth"},
		{name: "sentinel empty host", url: "redis-sentinel://s1:26379,,s2:26379/m", want: "empty host"},
		{name: "sentinel bad port", url: "redis-sentinel://" + userinfo("", plantedPassword) + "@s1:99999/m", want: `port "99999"`},
		{name: "cluster with a database", url: "redis-cluster://" + userinfo("", plantedPassword) + "@n1:7000/2", want: "only database 0"},
		{name: "cluster option", url: "redis-cluster://n1:7000?db=0", want: `unknown option "db"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Redis(redisConfig(tt.url))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			assertNoSecret(t, err.Error())
		})
	}
}

// userinfo encodes user and password as the user-info part of a URL.
func userinfo(user, pass string) string { return url.UserPassword(user, pass).String() }

func assertNoSecret(t *testing.T, msg string) {
	t.Helper()
	escaped := userinfo("", plantedPassword)[1:]
	for _, form := range []string{plantedPassword, url.PathEscape(plantedPassword), url.QueryEscape(plantedPassword), escaped} {
		if strings.Contains(msg, form) {
			t.Fatalf("message contains the password (as %q): %s", form, msg)
		}
	}
}

func TestRedisPasswordFile(t *testing.T) {
	passFile := writeFile(t, "redis-password", plantedPassword+"\n")
	emptyFile := writeFile(t, "empty", "\n")
	tests := []struct {
		name, url  string
		passwordOf func(s redisSetup) string
	}{
		{name: "single", url: "redis://app:old@cache:6379/0", passwordOf: func(s redisSetup) string { return s.single.Password }},
		{name: "sentinel", url: "redis-sentinel://app:old@s1:26379/m", passwordOf: func(s redisSetup) string { return s.failover.Password }},
		{name: "cluster", url: "redis-cluster://n1:7000", passwordOf: func(s redisSetup) string { return s.cluster.Password }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := redisConfig(tt.url)
			cfg.RedisPasswordFile = passFile
			s, err := redisSetupFrom(cfg)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got := tt.passwordOf(s); got != plantedPassword {
				t.Fatalf("password not taken from the file (got %d bytes)", len(got))
			}
		})
	}
	t.Run("empty file", func(t *testing.T) {
		cfg := redisConfig("redis://cache:6379")
		cfg.RedisPasswordFile = emptyFile
		if _, err := Redis(cfg); err == nil || !strings.Contains(err.Error(), "SIDECAR_REDIS_PASSWORD_FILE") {
			t.Fatalf("error %v, want one naming SIDECAR_REDIS_PASSWORD_FILE", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		cfg := redisConfig("redis://cache:6379")
		cfg.RedisPasswordFile = passFile + ".missing"
		if _, err := Redis(cfg); err == nil || !strings.Contains(err.Error(), "SIDECAR_REDIS_PASSWORD_FILE") {
			t.Fatalf("error %v, want one naming SIDECAR_REDIS_PASSWORD_FILE", err)
		}
	})
	t.Run("file password never in errors", func(t *testing.T) {
		cfg := redisConfig("redis-sentinel://s1:26379/m?db=" + url.QueryEscape(plantedPassword))
		cfg.RedisPasswordFile = passFile
		_, err := Redis(cfg)
		if err == nil {
			t.Fatal("no error for a bad db")
		}
		assertNoSecret(t, err.Error())
	})
}

func TestRedisTLSFiles(t *testing.T) {
	files := certs.Generate(t)
	tests := []struct {
		name    string
		url     string
		mutate  func(c *config.Config)
		wantErr string
		check   func(t *testing.T, s redisSetup)
	}{
		{
			name:    "CA file with a plaintext scheme",
			url:     "redis://cache:6379",
			mutate:  func(c *config.Config) { c.RedisTLSCAFile = files.CAFile },
			wantErr: "SIDECAR_REDIS_TLS_CA_FILE is set but SIDECAR_REDIS_URL does not use TLS",
		},
		{
			name:    "client key with a plaintext cluster",
			url:     "redis-cluster://n1:7000",
			mutate:  func(c *config.Config) { c.RedisTLSKeyFile = files.ClientKeyFile },
			wantErr: "SIDECAR_REDIS_TLS_KEY_FILE",
		},
		{
			name:    "certificate without key",
			url:     "rediss://cache:6379",
			mutate:  func(c *config.Config) { c.RedisTLSCertFile = files.ClientCertFile },
			wantErr: "SIDECAR_REDIS_TLS_KEY_FILE: is required",
		},
		{
			name: "CA and client certificate",
			url:  "rediss://cache:6379",
			mutate: func(c *config.Config) {
				c.RedisTLSCAFile, c.RedisTLSCertFile, c.RedisTLSKeyFile = files.CAFile, files.ClientCertFile, files.ClientKeyFile
			},
			check: func(t *testing.T, s redisSetup) {
				tc := mustSingle(t, s).TLSConfig
				if tc == nil || !tc.RootCAs.Equal(files.CAPool()) || len(tc.Certificates) != 1 || tc.ServerName != "cache" {
					t.Fatalf("TLS %+v, want the CA pool, one client certificate, server name cache", tc)
				}
			},
		},
		{
			name:   "CA for a TLS sentinel",
			url:    "rediss-sentinel://s1:26379/m",
			mutate: func(c *config.Config) { c.RedisTLSCAFile = files.CAFile },
			check: func(t *testing.T, s redisSetup) {
				if tc := mustFailover(t, s).TLSConfig; tc == nil || !tc.RootCAs.Equal(files.CAPool()) {
					t.Fatalf("TLS %+v, want the CA pool", tc)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := redisConfig(tt.url)
			tt.mutate(cfg)
			s, err := redisSetupFrom(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			tt.check(t, s)
		})
	}
}

func TestRedisAgainstServer(t *testing.T) {
	t.Run("password file overrides the URL", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{Password: plantedPassword})
		cfg := redisConfig("redis://:wrong-password@" + srv.Addr() + "/0")
		cfg.RedisPasswordFile = writeFile(t, "pw", plantedPassword+"\n")
		pingOK(t, cfg)
	})
	t.Run("password in the URL", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{Password: plantedPassword})
		pingOK(t, redisConfig(srv.URL()))
	})
	t.Run("wrong password fails without leaking it", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{Password: "server-side-password"})
		c, err := Redis(redisConfig("redis://" + userinfo("", plantedPassword) + "@" + srv.Addr()))
		if err != nil {
			t.Fatalf("building the client: %v", err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		perr := c.Ping(ctx).Err()
		if perr == nil {
			t.Fatal("a wrong password was accepted")
		}
		assertNoSecret(t, perr.Error())
	})
	t.Run("mutual TLS with a CA file", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{TLS: true, TLSAuthClients: true})
		cfg := redisConfig(srv.URL())
		cfg.RedisTLSCAFile = srv.CAFile()
		cfg.RedisTLSCertFile, cfg.RedisTLSKeyFile = srv.ClientCertFiles()
		pingOK(t, cfg)
	})
}

func pingOK(t *testing.T, cfg *config.Config) {
	t.Helper()
	c, err := Redis(cfg)
	if err != nil {
		t.Fatalf("building the client: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
}

func mustSingle(t *testing.T, s redisSetup) *redis.Options {
	t.Helper()
	if s.single == nil {
		t.Fatalf("got %+v, want a single-server client", s)
	}
	return s.single
}

func mustFailover(t *testing.T, s redisSetup) *redis.FailoverOptions {
	t.Helper()
	if s.failover == nil {
		t.Fatalf("got %+v, want a Sentinel failover client", s)
	}
	return s.failover
}

func mustCluster(t *testing.T, s redisSetup) *redis.ClusterOptions {
	t.Helper()
	if s.cluster == nil {
		t.Fatalf("got %+v, want a cluster client", s)
	}
	return s.cluster
}
