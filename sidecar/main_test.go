package sidecar

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: every goroutine the package starts must end
// with the component that started it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
