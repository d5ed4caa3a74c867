package sidecar

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: every goroutine the package starts must end
// with the component that started it. The one exception is not the package's: the HTTP deliverer's fasthttp
// HostClient closes expired idle connections from a goroutine that sleeps until the next may expire and ends at
// its next wake-up once the client holds no connection; closing the idle connections does not wake it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"))
}
