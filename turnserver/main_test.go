package turnserver

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(benchServerEnv) != "" {
		// A copy of this binary serving TURN for the benchmarks, so that
		// its CPU time is measured apart from the client's.
		runBenchServer()
		return
	}
	goleak.VerifyTestMain(m)
}
