package mariadbtest

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// shared is the pair of a test binary, started by the first Shared call.
var shared struct {
	once sync.Once
	pair *Pair
	err  error
}

// Shared returns the test binary's pair, starting it on the first call
// (within 60 s). When it cannot start, the test is skipped with the
// reason, except when WHYCACHE_TEST_DSN is set (CI, where MySQL tests must
// run): then it fails.
func Shared(tb testing.TB) *Pair {
	tb.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		shared.pair, shared.err = Start(ctx)
	})
	if shared.err != nil {
		if os.Getenv("WHYCACHE_TEST_DSN") != "" {
			tb.Fatalf("mariadbtest: cannot start a MariaDB primary and replica (WHYCACHE_TEST_DSN is set, so this must work): %v", shared.err)
		}
		tb.Skipf("mariadbtest: no MariaDB primary and replica for this test: %v", shared.err)
	}
	return shared.pair
}

// Main runs the tests of m and then kills the pair Shared started, if
// any; a package's TestMain calls os.Exit(mariadbtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if shared.pair != nil {
		shared.pair.Close()
	}
	return code
}
