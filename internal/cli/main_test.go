package cli

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a command leaves a goroutine behind (clients, timers,
// brokers are all stopped by the time the tests end).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
