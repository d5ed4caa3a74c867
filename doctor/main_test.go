package doctor

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when an audit leaves a Kafka or Redis client's goroutines running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
