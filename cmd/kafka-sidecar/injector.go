package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/kafka-sidecar/kafka-sidecar/inject"
	"github.com/kafka-sidecar/kafka-sidecar/injector"
	"github.com/kafka-sidecar/kafka-sidecar/sidecar"
)

const injectorUsage = `Usage:
  kafka-sidecar injector [--defaults FILE] [--tls-cert-file F --tls-key-file F | --service NAME ...] [flags]

A mutating admission webhook: Pods created with kafka-sidecar.io/inject: "true" get the sidecar, exactly
as kafka-sidecar inject would add it to their workload. Serves /mutate, /healthz and /readyz over TLS.

Certificates: --tls-cert-file and --tls-key-file (cert-manager's Secret, mounted; re-read when renewed).
Without them the injector makes its own: a CA kept in the Secret --ca-secret (created by the first replica,
shared by all), a serving certificate for --service renewed before it expires, and the CA written into the
caBundle of the MutatingWebhookConfiguration --webhook-config (and written again if an upgrade resets it).

Flags:
`

func runInjector(ctx context.Context, args []string, stderr io.Writer) int {
	fs := defaultsFlagSet("injector", injectorUsage, stderr)
	listen := fs.String("listen", ":8443", "address of the HTTPS server")
	defaultsFile := fs.String("defaults", "", "defaults file (the mounted ConfigMap); re-read when it changes")
	certFile := fs.String("tls-cert-file", "", "serving certificate (PEM)")
	keyFile := fs.String("tls-key-file", "", "serving key (PEM)")
	service := fs.String("service", "", "the webhook Service's name, for a self-made serving certificate")
	namespace := fs.String("namespace", os.Getenv("POD_NAMESPACE"), "the injector's namespace (default $POD_NAMESPACE)")
	caSecret := fs.String("ca-secret", "", "Secret that keeps the self-made CA (needs get and create on it)")
	webhookConfig := fs.String("webhook-config", "", "MutatingWebhookConfiguration whose caBundle gets the self-made CA (needs get and patch on it)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	drain := fs.Duration("shutdown-timeout", 20*time.Second, "time for in-flight reviews on SIGTERM")
	flags := injectFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	log, err := sidecar.NewLogger(*logLevel, "json")
	if err != nil {
		fmt.Fprintln(stderr, "injector: --log-level:", err)
		return exitConfig
	}
	defer func() { _ = log.Sync() }()
	usage := func(msg string) int {
		fmt.Fprintln(stderr, "injector:", msg)
		return exitConfig
	}
	if (*certFile == "") != (*keyFile == "") {
		return usage("--tls-cert-file and --tls-key-file go together")
	}
	if *certFile == "" && (*service == "" || *namespace == "") {
		return usage("without --tls-cert-file, --service and --namespace name the certificate the injector makes")
	}
	if (*caSecret == "") != (*webhookConfig == "") {
		return usage("--ca-secret and --webhook-config go together")
	}

	base := inject.Defaults{Image: defaultImage()}
	var source injector.ConfigSource
	if *defaultsFile != "" {
		fc, err := injector.NewFileConfig(*defaultsFile, base, *flags, log)
		if err != nil {
			return usage(err.Error())
		}
		source = fc
	} else {
		cfg, err := loadDefaults("", base, *flags)
		if err != nil {
			return usage(err.Error())
		}
		source = injector.StaticConfig(cfg)
	}

	getCert, err := certificates(ctx, log, *certFile, *keyFile, *service, *namespace, *caSecret, *webhookConfig)
	if err != nil {
		log.Error("certificates", zap.Error(err))
		fmt.Fprintln(stderr, "injector:", err)
		return exitFatal
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "injector:", err)
		return exitFatal
	}
	log.Info("serving", zap.String("addr", ln.Addr().String()))
	if err := injector.Serve(ctx, ln, injector.NewServer(source, log), getCert, *drain); err != nil {
		return fatal(log, stderr, "serving", err)
	}
	log.Info("stopped")
	return exitOK
}

// certificates picks the serving certificates: mounted files, or a self-made CA (shared through a Secret and
// published in the webhook configuration when those are named).
func certificates(ctx context.Context, log *zap.Logger, certFile, keyFile, service, namespace, caSecret, webhookConfig string) (func(*tls.ClientHelloInfo) (*tls.Certificate, error), error) {
	if certFile != "" {
		f, err := injector.NewFileCertificate(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		return f.GetCertificate, nil
	}
	const caName, caLifetime, certLifetime = "kafka-sidecar-injector CA", 10 * 365 * 24 * time.Hour, 30 * 24 * time.Hour
	var ca *injector.Authority
	var err error
	if caSecret != "" {
		cluster, cerr := injector.InCluster()
		if cerr != nil {
			return nil, cerr
		}
		if ca, err = cluster.EnsureAuthority(ctx, namespace, caSecret, caLifetime); err != nil {
			return nil, err
		}
		if err := injector.KeepCABundle(ctx, cluster, webhookConfig, ca.CertPEM, time.Minute, log); err != nil {
			return nil, err
		}
	} else {
		log.Warn("self-made CA kept in memory only: nothing publishes it, so an API server will not trust it (name --ca-secret and --webhook-config)")
		if ca, err = injector.NewAuthority(caName, caLifetime, time.Now()); err != nil {
			return nil, err
		}
	}
	names := []string{service + "." + namespace + ".svc", service, service + "." + namespace, service + "." + namespace + ".svc.cluster.local"}
	s, err := injector.NewSelfSigned(ca, names, certLifetime, time.Now)
	if err != nil {
		return nil, err
	}
	return s.GetCertificate, nil
}
