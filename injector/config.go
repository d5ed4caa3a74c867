package injector

import (
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kafka-sidecar/kafka-sidecar/inject"
)

// FileConfig is a ConfigSource read from a file: the injector's ConfigMap, mounted in its pod. The file is
// read again when it changes (the kubelet swaps a mounted ConfigMap in place), at most once per second; a
// version that does not parse is logged and the last good one stays in force.
type FileConfig struct {
	path  string
	base  inject.Defaults // under the file's cluster-wide defaults
	flags inject.Defaults // over them
	log   *zap.Logger

	mu      sync.Mutex
	checked time.Time
	stamp   string
	cfg     inject.Config
	good    bool
}

// NewFileConfig reads path once. The file's cluster-wide values are laid over base (built-in defaults), and
// flags (from the command line) over them; the file's namespaces win over all three.
func NewFileConfig(path string, base, flags inject.Defaults, log *zap.Logger) (*FileConfig, error) {
	c := &FileConfig{path: path, base: base, flags: flags, log: log}
	if _, err := c.Config(); err != nil {
		return nil, err
	}
	return c, nil
}

// Config returns the defaults in force: the last version of the file that parsed. It fails only while no
// version has parsed yet.
func (c *FileConfig) Config() (inject.Config, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.good && now.Sub(c.checked) < recheckEvery {
		return c.cfg, nil
	}
	c.checked = now
	err := c.reload()
	if c.good {
		if err != nil {
			c.log.Error("defaults file changed but cannot be used; the previous version stays in force", zap.Error(err))
		}
		return c.cfg, nil
	}
	return inject.Config{}, err
}

// reload reads the file when its modification time or size changed.
func (c *FileConfig) reload() error {
	info, err := os.Stat(c.path)
	if err != nil {
		return fmt.Errorf("reading defaults: %w", err)
	}
	stamp := fmt.Sprint(info.ModTime().UnixNano(), info.Size())
	if c.good && stamp == c.stamp {
		return nil
	}
	cfg, err := inject.LoadConfig(c.path)
	if err == nil {
		cfg.Defaults = c.base.Over(cfg.Defaults).Over(c.flags)
		err = cfg.Validate()
	}
	if err != nil {
		c.stamp = stamp // report a bad version once, not every second
		return err
	}
	c.cfg, c.stamp, c.good = cfg, stamp, true
	return nil
}
