package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/ersmesh/ersmesh/node/control"
)

// runCtl is `ersmesh ctl`: one EMS-style command to a running device.
func runCtl(args []string) error {
	fs := flag.NewFlagSet("ersmesh ctl", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	api := control.DefaultAPI
	if v := os.Getenv("ERSMESH_API"); v != "" {
		api = v
	}
	fs.StringVar(&api, "api", api, "`address` of the device's control API (its --ops); env ERSMESH_API")
	timeout := fs.Duration("timeout", 45*time.Second, "how long to wait for the device's reply")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: ersmesh ctl [--api host:port] <command> [key=value ...]")
		fmt.Fprintln(fs.Output(), "\nCommands, as EMS names them:")
		fmt.Fprintln(fs.Output(), "  startWebRTC roomid=NAME [token=SECRET] [keepAlive=1|0] [ersip=IP ersport=PORT]")
		fmt.Fprintln(fs.Output(), "  stopWebRTC roomid=NAME | configId=N")
		fmt.Fprintln(fs.Output(), "  listConfig")
		fmt.Fprintln(fs.Output(), "\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("ctl: no command given")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	rep, err := control.Call(ctx, api, fs.Arg(0), fs.Args()[1:])
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	fmt.Println(string(b))
	if !rep.OK() {
		return fmt.Errorf("%s: %s", fs.Arg(0), rep.Description)
	}
	return nil
}
