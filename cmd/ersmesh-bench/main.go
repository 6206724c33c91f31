// Command ersmesh-bench runs the benchmarks of docs/benchmarks.md and writes
// the report. It is apart from the ersmesh command so that the binary a
// camera runs links none of the harnesses (chromedp, plotting, mocknet).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	if err := runBench(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ersmesh-bench:", err)
		os.Exit(1)
	}
}

func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	return fs.Parse(args)
}

// interrupted returns a context that ends on Ctrl-C or SIGTERM.
func interrupted() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }
