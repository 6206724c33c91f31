package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/config"
	"github.com/ersmesh/ersmesh/node/control"
	"github.com/ersmesh/ersmesh/role"
	"github.com/ersmesh/ersmesh/trust"
	"github.com/ersmesh/ersmesh/web"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = ""

// A command binds its flags on a flag set and returns what runs it once
// they are parsed (package config fills them from the environment and the
// config file too). Every command goes through that one path, so that
// every flag has its file key and variable, and docs/configuration.md
// lists them all.
type command struct {
	name, summary string
	operands      bool // takes arguments after its flags
	setup         func(fs *flag.FlagSet) (run func(args []string) error)
}

func commands() []command {
	return []command{
		{"demo", "run a bootstrap, a bridge and a device on loopback with the sample stream", false, demoCommand},
		{"device", "publish rooms and stream to viewers (the camera side)", false, deviceCommand},
		{"bridge", "serve the player and the ERS protocol, relay signalling to devices", false, bridgeCommand},
		{"bootstrap", "run a stable DHT node for devices and bridges to dial first", false, bootstrapCommand},
		{"turn", "run a TURN server (UDP, TCP, TLS) for viewers and devices behind NATs", false, turnCommand},
		{"player", "serve only the player page (or write it to a folder), to load it from a host you trust rather than from a bridge", false, playerCommand},
		{"secret", "print a new room secret (128 random bits) for --room-secret or startWebRTC token=", false, secretCommand},
		{"ctl", "send an EMS-style command to a running device: startWebRTC, stopWebRTC, listConfig", true, ctlCommand},
		{"version", "print the version", false, versionCommand},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "ersmesh: peer-to-peer camera-to-browser streaming over a libp2p mesh")
	fmt.Fprintln(w, "\nUsage: ersmesh <command> [flags]   (ersmesh <command> --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		usage(os.Stderr)
		return errors.New("no command given")
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(os.Stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(args[1:])
			if errors.Is(err, flag.ErrHelp) || errors.Is(err, config.ErrPrinted) {
				return nil
			}
			return err
		}
	}
	usage(os.Stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

// flagSet is c's flags, with --config and --print-config, and what runs
// c once they are parsed.
func (c command) flagSet() (*flag.FlagSet, func([]string) error) {
	fs := flag.NewFlagSet("ersmesh "+c.name, flag.ContinueOnError)
	run := c.setup(fs)
	config.Register(fs)
	return fs, run
}

func (c command) run(args []string) error {
	fs, run := c.flagSet()
	fs.SetOutput(os.Stderr)
	if err := config.Parse(fs, args, &config.Options{Args: c.operands}); err != nil {
		return err
	}
	return run(fs.Args())
}

// runner is what every role is to the command line.
type runner interface {
	Start(context.Context) error
	Close() error
}

// roleCommand is the run of a role's command: the --log-* flags bound on
// fs, then, once parsed, the logger into the role's config (setLogger),
// the role built by newRole, started, announced, and closed on Ctrl-C or
// SIGTERM.
func roleCommand[R runner](fs *flag.FlagSet, setLogger func(*slog.Logger), newRole func(context.Context) (R, error), announce func(R)) func([]string) error {
	lc := role.DefaultLogConfig()
	lc.Flags(fs)
	return func([]string) error {
		log, err := lc.Logger(os.Stderr)
		if err != nil {
			return err
		}
		setLogger(log)
		ctx, stop := interrupted()
		defer stop()
		r, err := newRole(ctx)
		if err != nil {
			return err
		}
		if err := r.Start(ctx); err != nil {
			r.Close()
			return err
		}
		announce(r)
		<-ctx.Done()
		return r.Close()
	}
}

// interrupted returns a context that ends on Ctrl-C or SIGTERM.
func interrupted() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func demoCommand(fs *flag.FlagSet) func([]string) error {
	cfg := demo.Config{Addr: "127.0.0.1:4545", Room: "demo"}
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "bridge HTTP `address`")
	fs.StringVar(&cfg.Room, "room", cfg.Room, "room `name`")
	fs.BoolVar(&cfg.TURN, "turn", cfg.TURN, "also run a TURN server on loopback and hand out its credentials")
	fs.BoolVar(&cfg.TLS, "tls", cfg.TLS, "serve HTTPS with a certificate generated for localhost (the browser warns about it once; plain HTTP on localhost is already a secure context)")
	lc := role.DefaultLogConfig()
	lc.Flags(fs)
	return func([]string) (err error) {
		if cfg.Logger, err = lc.Logger(os.Stderr); err != nil {
			return err
		}
		ctx, stop := interrupted()
		defer stop()
		d, err := demo.Start(ctx, cfg)
		if err != nil {
			return err
		}
		fmt.Printf("\nersmesh demo is running: bootstrap, bridge and device on loopback.\n\n  Open %s\n  WHEP  %s/whep/%s/sample\n\nPress Ctrl-C to stop.\n\n", d.URL, d.Bridge, cfg.Room)
		<-ctx.Done()
		fmt.Println("stopping…")
		return d.Close()
	}
}

func deviceCommand(fs *flag.FlagSet) func([]string) error {
	cfg := role.DefaultDeviceConfig()
	cfg.Flags(fs)
	return roleCommand(fs, func(l *slog.Logger) { cfg.Logger = l },
		func(ctx context.Context) (*role.Device, error) { return role.NewDevice(ctx, cfg) },
		func(d *role.Device) {
			fmt.Printf("device %s serving rooms %s\n", d.Host().ID(), strings.Join(d.Device().Rooms(), ", "))
		})
}

func bridgeCommand(fs *flag.FlagSet) func([]string) error {
	cfg := role.DefaultBridgeConfig()
	cfg.Version = versionString()
	cfg.Flags(fs)
	return roleCommand(fs, func(l *slog.Logger) { cfg.Logger = l },
		func(ctx context.Context) (*role.Bridge, error) { return role.NewBridge(ctx, cfg) },
		func(*role.Bridge) {})
}

func bootstrapCommand(fs *flag.FlagSet) func([]string) error {
	cfg := role.DefaultBootstrapConfig()
	cfg.Flags(fs)
	return roleCommand(fs, func(l *slog.Logger) { cfg.Logger = l },
		func(ctx context.Context) (*role.Bootstrap, error) { return role.NewBootstrap(ctx, cfg) },
		func(b *role.Bootstrap) {
			fmt.Println("bootstrap node running; give other nodes one of these with --bootstrap:")
			for _, a := range b.Host().Addrs() {
				fmt.Println("  " + a.String())
			}
		})
}

func turnCommand(fs *flag.FlagSet) func([]string) error {
	cfg := role.DefaultTURNConfig()
	cfg.Flags(fs)
	return roleCommand(fs, func(l *slog.Logger) { cfg.Logger = l },
		func(ctx context.Context) (*role.TURN, error) { return role.NewTURN(ctx, cfg) },
		func(t *role.TURN) {
			fmt.Println("TURN server running; give bridges --turn-secret and these with --turn-url:")
			for _, u := range t.Server().URLs("") {
				fmt.Println("  " + u)
			}
		})
}

// playerCommand is `ersmesh player`: the player page and its modules and
// nothing else, from this binary rather than from a bridge run by someone
// else (docs/trust-model.md). With --out it writes them to a folder, for a
// web server of the owner's, and prints their SHA-256 to compare with a
// release's.
func playerCommand(fs *flag.FlagSet) func([]string) error {
	addr := fs.String("addr", "127.0.0.1:4546", "HTTP `address` to serve the player on (loopback is a secure context, as browsers need for the checks)")
	out := fs.String("out", "", "write the player's files to this `folder` and exit, instead of serving them")
	return func([]string) error {
		if *out != "" {
			if err := os.CopyFS(*out, web.FS()); err != nil {
				return fmt.Errorf("player: %w", err)
			}
			for _, f := range web.Fingerprints() {
				fmt.Printf("%s  %s\n", f[1], f[0])
			}
			return nil
		}
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: web.Handler(), ReadHeaderTimeout: 10 * time.Second}
		ctx, cancel := interrupted()
		defer cancel()
		go func() { <-ctx.Done(); srv.Close() }()
		fmt.Printf("player on http://%s/?room=ROOM&bridges=https://bridge.example (add #secret=… for a room secret)\n", ln.Addr())
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// secretCommand is `ersmesh secret`: a room secret nobody guesses, where
// one a person makes up is only as strong as its entropy.
func secretCommand(*flag.FlagSet) func([]string) error {
	return func([]string) error {
		fmt.Println(trust.NewSecret())
		return nil
	}
}

// ctlCommand is `ersmesh ctl`: one EMS-style command to a running device.
func ctlCommand(fs *flag.FlagSet) func([]string) error {
	api := fs.String("api", control.DefaultAPI, "`address` of the device's control API (its --ops)")
	timeout := fs.Duration("timeout", 45*time.Second, "how long to wait for the device's reply")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: ersmesh ctl [--api host:port] <command> [key=value ...]")
		fmt.Fprintln(fs.Output(), "\nCommands, as EMS names them:")
		fmt.Fprintln(fs.Output(), "  startWebRTC roomid=NAME [token=SECRET] [keepAlive=1|0] [ersip=IP ersport=PORT]")
		fmt.Fprintln(fs.Output(), "  stopWebRTC roomid=NAME | configId=N")
		fmt.Fprintln(fs.Output(), "  listConfig")
		fmt.Fprintln(fs.Output(), "\nFlags (each also a config key and an ERSMESH_ variable):")
		fs.PrintDefaults()
	}
	return func(args []string) error {
		if len(args) == 0 {
			fs.Usage()
			return errors.New("ctl: no command given")
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		rep, err := control.Call(ctx, *api, args[0], args[1:])
		if err != nil {
			return err
		}
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Println(string(b))
		if !rep.OK() {
			return fmt.Errorf("%s: %s", args[0], rep.Description)
		}
		return nil
	}
}

func versionCommand(*flag.FlagSet) func([]string) error {
	return func([]string) error {
		fmt.Println("ersmesh", versionString())
		return nil
	}
}

// versionString is the link-time version, else the module's, else "devel".
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
