package config_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/kafka-sidecar/kafka-sidecar/config"
)

// TestReadmeListsEveryVariable keeps the README's configuration table in step with the Config struct.
func TestReadmeListsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatalf("reading README.md: %v", err)
	}
	for _, f := range append(config.Fields(), config.OTelFields()...) {
		if !bytes.Contains(readme, []byte("`"+f.Key+"`")) {
			t.Errorf("README.md does not document %s", f.Key)
		}
	}
}

// TestHelpListsEveryVariableWithDefault checks that --help (generated) names every variable and its default.
func TestHelpListsEveryVariableWithDefault(t *testing.T) {
	var buf bytes.Buffer
	if err := config.WriteHelp(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, f := range append(config.Fields(), config.OTelFields()...) {
		line := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, f.Key+" ") {
				line = l
			}
		}
		if line == "" {
			t.Errorf("--help does not list %s", f.Key)
			continue
		}
		if f.HasDefault && f.Default != "" && !strings.Contains(line, f.Default) {
			t.Errorf("--help line for %s lacks its default %q: %s", f.Key, f.Default, line)
		}
	}
}
