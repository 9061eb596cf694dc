package controlplane

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// pion's messages reach gw's logger with their scope, at gw's levels:
// Warn and Error as they are, Info and below as Debug, and nothing below
// the logger's level is formatted.
func TestPionLogs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l := pionLogs{log: log}.NewLogger("ice")
	l.Warnf("candidate %s unreachable", "host")
	l.Error("dtls handshake failed")
	l.Info("pair selected")
	l.Debugf("%v", formatPanics{t})
	out := buf.String()
	for _, want := range []string{
		`level=WARN msg="candidate host unreachable" component=pion scope=ice`,
		`level=ERROR msg="dtls handshake failed" component=pion scope=ice`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "pair selected") {
		t.Errorf("pion's Info logged at info level:\n%s", out)
	}

	buf.Reset()
	log = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pionLogs{log: log}.NewLogger("srtp").Infof("duplicated packet %d", 7)
	if want := `level=DEBUG msg="duplicated packet 7" component=pion scope=srtp`; !strings.Contains(buf.String(), want) {
		t.Errorf("missing %q in:\n%s", want, buf.String())
	}
}

// formatPanics fails the test if a message below the level is formatted.
type formatPanics struct{ t *testing.T }

func (f formatPanics) String() string {
	f.t.Error("a Debug message was formatted for an Info logger")
	return ""
}
