package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInjectorRefusesBadFlagsWithExit2(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "defaults.yaml")
	if err := os.WriteFile(bad, []byte("brokers: nohostport\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert-file", "a.crt"}, "go together"},
		{[]string{"--namespace", "ks"}, "--service"},
		{[]string{"--service", "s", "--namespace", "ks", "--ca-secret", "ca"}, "go together"},
		{[]string{"--service", "s", "--namespace", "ks", "--defaults", bad}, "brokers"},
		{[]string{"--service", "s", "--namespace", "ks", "--env", "X=1"}, "SIDECAR_"},
		{[]string{"--log-level", "loud"}, "log-level"},
	} {
		var errOut bytes.Buffer
		if code := runInjector(context.Background(), tc.args, &errOut); code != exitConfig || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}
