package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommandLine runs the command line's quick paths: help, version,
// --print-config, and the errors a user meets first.
func TestCommandLine(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"version"}, {"device", "--print-config"}, {"bridge", "--help"}} {
		if err := run(args); err != nil {
			t.Errorf("ersmesh %s: %v", strings.Join(args, " "), err)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("record-ttl: soon\n"), 0o600)
	for args, want := range map[string]string{
		"nonsense":               "unknown command",
		"device --ops= --state=": "--room: required",
		"device":                 "--bootstrap: required",
		"device --room x":        "--bootstrap: required",
		"device --room x --webhook ftp://x --bootstrap /ip4/127.0.0.1/tcp/1": "--webhook",
		"device --control-allow nope":                                        "--control-allow",
		"ctl":                                                                "no command given",
		"ctl --api 127.0.0.1:1 listConfig":                                   "device API at 127.0.0.1:1",
		"device --config " + bad:                                             `key "record-ttl"`,
		"bridge --admin-allow 300.1.1.1":                                     "--admin-allow",
		"device --room x --room-secret x":                                    "ROOM=SECRET",
		"device --room x --talkback cam":                                     "--talkback: \"cam\": want STREAM=SINK",
		"device --room x --talkback cam=speaker:x":                           "unknown kind",
		"device --room x --talkback cam=rtsp:cam":                            "want rtsp://host/path",
		"bridge --no-such-flag":                                              "flag provided but not defined",
	} {
		err := run(strings.Fields(args))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ersmesh %s: %v, want an error mentioning %q", args, err, want)
		}
	}
}

// TestBridgeTLSFlags: the TLS flags' mistakes are caught before anything
// listens.
func TestBridgeTLSFlags(t *testing.T) {
	dir := t.TempDir()
	for args, want := range map[string]string{
		"bridge --turn-on-https":                                                                "--turn-on-https: needs TLS",
		"bridge --tls-cert x.pem":                                                               "--tls-cert and --tls-key go together",
		"bridge --tls-cert " + dir + "/none.pem --tls-key k.pem":                                "none.pem",
		"bridge --acme-domain a.example --tls-cert c --tls-key k":                               "give one",
		"bridge --acme-domain a.example --acme-dir " + dir + " --http nope":                     "--http",
		"bridge --acme-domain a.example --acme-dir " + dir + " --acme-ca-root " + dir + "/none": "ACME CA root",
	} {
		err := run(strings.Fields(args))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ersmesh %s: %v, want an error mentioning %q", args, err, want)
		}
	}
}

// TestEnvironment: the variables that used to be read by hand are now
// the flags' own (package config), and still work.
func TestEnvironment(t *testing.T) {
	t.Setenv("ERSMESH_API", "127.0.0.1:1")
	if err := run([]string{"ctl", "listConfig"}); err == nil || !strings.Contains(err.Error(), "device API at 127.0.0.1:1") {
		t.Errorf("ctl with ERSMESH_API: %v, want it to call 127.0.0.1:1", err)
	}
	// With the secret from the environment, the turn role gets past it to
	// the next key.
	if err := run([]string{"turn", "--turn-relay-ports", "x"}); err == nil || !strings.Contains(err.Error(), "--turn-secret") {
		t.Errorf("turn without a secret: %v", err)
	}
	t.Setenv("ERSMESH_TURN_SECRET", "s")
	if err := run([]string{"turn", "--turn-relay-ports", "x"}); err == nil || !strings.Contains(err.Error(), "--turn-relay-ports") {
		t.Errorf("turn with ERSMESH_TURN_SECRET: %v, want the relay ports refused", err)
	}
	t.Setenv("ERSMESH_LOG_FORMAT", "xml")
	if err := run([]string{"bootstrap"}); err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("bootstrap with ERSMESH_LOG_FORMAT=xml: %v", err)
	}
}
