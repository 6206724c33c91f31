// Command ersmesh runs one role of the ersmesh mesh: demo, device, bridge,
// bootstrap or turn, and ctl. It only parses flags into a role's config
// (package role) and runs the role.
package main

// docs/configuration.md is written from the flags themselves.
//go:generate go test -run TestConfigurationReference -update .

import (
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ersmesh:", err)
		os.Exit(1)
	}
}
