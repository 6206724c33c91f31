package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductLinksNoHarness keeps the binary a camera runs free of the
// benchmark harnesses and the test clients: they pull a browser driver,
// plotting and a simulated network into it. (gonum's mathext stays: the
// DHT library itself uses it.)
func TestProductLinksNoHarness(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	banned := []string{
		"github.com/chromedp/",
		"gonum.org/v1/plot",
		"/p2p/net/mock",
		"github.com/ersmesh/ersmesh/internal/bench/",
		"github.com/ersmesh/ersmesh/internal/sioclient",
		"github.com/ersmesh/ersmesh/internal/ersviewer",
		"github.com/ersmesh/ersmesh/internal/browsertest",
		"github.com/ersmesh/ersmesh/internal/nattest",
		"github.com/ersmesh/ersmesh/internal/testutil",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, b := range banned {
			if strings.Contains(pkg, b) {
				t.Errorf("cmd/ersmesh links %s", pkg)
			}
		}
	}
}
