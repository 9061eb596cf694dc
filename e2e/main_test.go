package e2e

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/gw-project/gw/internal/gwtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, gwtest.LeakOptions()...)
}
