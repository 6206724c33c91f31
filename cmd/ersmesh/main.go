// Command ersmesh runs one role of the ersmesh mesh: demo, device, bridge or
// bootstrap. It only parses flags and calls into the packages.
package main

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
