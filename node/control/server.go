package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ersmesh/ersmesh/internal/localapi"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/room"
)

// Defaults of Config.
const (
	DefaultStartTimeout  = 30 * time.Second
	DefaultRetryInterval = 5 * time.Second
)

// Config of a Controller.
type Config struct {
	Device *node.Device
	// StateFile keeps the keepAlive commands ("" : they last until the
	// device stops).
	StateFile string
	// Allow lists the client addresses that may send commands; empty means
	// loopback only. Whatever address the listener has (an ops port opened
	// to a metrics scraper, say), the commands stay this narrow.
	Allow []netip.Prefix
	// StartTimeout bounds one room's first publication; default
	// DefaultStartTimeout.
	StartTimeout time.Duration
	// RetryInterval is how often a restored room that could not start
	// (the mesh not reachable yet) is tried again; default
	// DefaultRetryInterval.
	RetryInterval time.Duration
	// RegisterInterval is how often a room started with ersip/ersport is
	// handed to that bridge again; default DefaultRegisterInterval.
	RegisterInterval time.Duration
	Logger           *slog.Logger
}

// Controller runs commands against one device.
type Controller struct {
	cfg Config
	log *slog.Logger

	// mu guards configs, nextID and the entries. It is never held across
	// network I/O: a room's start (a DHT publication, up to StartTimeout)
	// marks its entry starting and runs without it (see start).
	mu      sync.Mutex
	configs map[string]*entry
	nextID  int

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the restore retry goroutine
}

type entry struct {
	WebRTCConfig
	running bool // the device serves the room (else a restored room waits for a retry)
	// starting, while not nil, cancels the start under way (without
	// c.mu); nobody else starts the entry meanwhile.
	starting context.CancelFunc
	// stopRegister ends the handing of the record to ersip/ersport.
	stopRegister context.CancelFunc
}

// New returns a Controller for cfg.Device. Call Restore to run the saved
// keepAlive commands.
func New(cfg Config) (*Controller, error) {
	if cfg.Device == nil {
		return nil, errors.New("control: no device")
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.RegisterInterval <= 0 {
		cfg.RegisterInterval = DefaultRegisterInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{cfg: cfg, log: cfg.Logger, configs: map[string]*entry{}, nextID: 1}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Restore runs the keepAlive commands of the state file again, as EMS does
// after a restart. A room that cannot be published yet (the mesh still
// joining) is retried every RetryInterval until it is, or until Close; it
// is listed meanwhile. Restore fails only on an unreadable state file.
func (c *Controller) Restore(ctx context.Context) error {
	if c.cfg.StateFile == "" {
		return nil
	}
	saved, err := loadState(c.cfg.StateFile)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var restored []*entry
	for _, sc := range saved {
		name, err := room.ParseName(sc.RoomID)
		if err != nil || !sc.KeepAlive || c.configs[name.String()] != nil {
			c.log.Warn("state file: skipping a saved command", "roomid", sc.RoomID, "err", err)
			continue
		}
		sc.RoomID = name.String()
		e := &entry{WebRTCConfig: sc}
		c.configs[sc.RoomID] = e
		c.nextID = max(c.nextID, sc.ConfigID+1)
		restored = append(restored, e)
	}
	// Every restored room is listed before the first is started.
	if c.startAll(ctx, restored, slog.LevelWarn) > 0 {
		c.wg.Add(1)
		go c.retry()
	}
	return nil
}

// retry starts the restored rooms that are not running, until all are.
func (c *Controller) retry() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.RetryInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		var waiting []*entry
		for _, e := range c.configs {
			if !e.running && e.starting == nil {
				waiting = append(waiting, e)
			}
		}
		left := c.startAll(c.ctx, waiting, slog.LevelDebug)
		c.mu.Unlock()
		if left == 0 {
			return
		}
	}
}

// startAll starts the restored entries es and returns how many are left
// waiting for a retry, logged at failed. The caller holds c.mu; start
// releases it for each room's publication, so entries are checked again
// before each.
func (c *Controller) startAll(ctx context.Context, es []*entry, failed slog.Level) (left int) {
	for _, e := range es {
		if c.configs[e.RoomID] != e || e.running || e.starting != nil {
			continue // stopped, or started by someone else, meanwhile
		}
		switch err := c.start(ctx, e); {
		case errors.Is(err, errStartStopped):
		case err != nil:
			left++
			c.log.Log(ctx, failed, "restored room not started yet; retrying", "room", e.RoomID, "in", c.cfg.RetryInterval, "err", err)
		default:
			c.log.Info("restored keepAlive room", "room", e.RoomID, "configId", e.ConfigID)
		}
	}
	return left
}

// errStartStopped: stopWebRTC removed the entry while it was starting.
var errStartStopped = errors.New("stopped while it started")

// start starts e's room on the device. The caller holds c.mu; start lets
// go of it for the publication, which may take StartTimeout, and takes it
// again: e is marked starting meanwhile, so that nobody else starts it and
// a stopWebRTC cancels it. It returns errStartStopped when e was removed
// meanwhile; the room is then not served.
func (c *Controller) start(ctx context.Context, e *entry) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StartTimeout)
	defer cancel()
	e.starting = cancel
	c.mu.Unlock()
	err := c.cfg.Device.StartRoom(ctx, e.RoomID, e.Token)
	c.mu.Lock()
	e.starting = nil
	if c.configs[e.RoomID] != e {
		if err == nil {
			c.cfg.Device.StopRoom(e.RoomID)
		}
		return errStartStopped
	}
	if err != nil {
		return err
	}
	e.running = true
	c.registerWith(e)
	return nil
}

// Close stops retrying restored rooms. The rooms keep running: they are
// the device's, closed with it.
func (c *Controller) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

// Register mounts the commands on mux beside what it serves already (the
// ops endpoints): every path the mux does not know is a command.
func (c *Controller) Register(mux *http.ServeMux) { mux.Handle("/", c) }

// ServeHTTP answers one command. Command failures are 200 with status
// FAIL, as EMS answers; refused clients get 403, unparseable requests 400.
func (c *Controller) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if why := c.refuse(r); why != "" {
		c.log.Warn("control request refused", "from", r.RemoteAddr, "reason", why)
		writeReply(w, http.StatusForbidden, fail(why))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeReply(w, http.StatusMethodNotAllowed, fail("use GET"))
		return
	}
	cmd, err := ParseRequest(r.URL.Path, r.URL.RawQuery)
	if err != nil {
		writeReply(w, http.StatusBadRequest, fail(err.Error()))
		return
	}
	reply := c.Do(r.Context(), cmd)
	c.log.Info("control command", "command", cmd.Name, "roomid", cmd.Params["roomid"], "status", reply.Status, "description", reply.Description)
	writeReply(w, http.StatusOK, reply)
}

// refuse returns why r may not command the device, or "".
func (c *Controller) refuse(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	ip, perr := netip.ParseAddr(host)
	if err != nil || perr != nil {
		return "unknown client address"
	}
	ip = ip.Unmap()
	allowed := false
	if len(c.cfg.Allow) == 0 {
		allowed = ip.IsLoopback()
	}
	for _, p := range c.cfg.Allow {
		allowed = allowed || p.Contains(ip)
	}
	if !allowed {
		return "commands are only taken from " + c.allowedWords()
	}
	// A web page the operator visits can make the browser send GETs to
	// loopback (and rebind its own name there).
	if why := localapi.FromWebPage(r); why != "" {
		return "commands from web pages are refused: " + why
	}
	return ""
}

func (c *Controller) allowedWords() string {
	if len(c.cfg.Allow) == 0 {
		return "loopback"
	}
	s := make([]string, len(c.cfg.Allow))
	for i, p := range c.cfg.Allow {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func writeReply(w http.ResponseWriter, status int, r Reply) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(r)
}

// Do runs one parsed command. Commands may run at once: a start that
// waits for the mesh holds up no listing and no other room.
func (c *Controller) Do(ctx context.Context, cmd Command) Reply {
	switch cmd.Name {
	case CmdStartWebRTC:
		return c.startWebRTC(ctx, cmd.Params)
	case CmdStopWebRTC:
		return c.stopWebRTC(cmd.Params)
	case CmdListConfig:
		return c.listConfig()
	}
	return fail("unknown command " + cmd.Name)
}

func (c *Controller) startWebRTC(ctx context.Context, p map[string]string) Reply {
	if p["roomid"] == "" {
		return fail("Parameter roomid is required")
	}
	name, err := room.ParseName(p["roomid"])
	if err != nil {
		return fail(fmt.Sprintf("Invalid roomid: %v", err))
	}
	sc := WebRTCConfig{RoomID: name.String(), ERSIP: p["ersip"], Token: p["token"], KeepAlive: true}
	if v, ok := p["ersport"]; ok {
		port, err := strconv.Atoi(v)
		if err != nil || port < 1 || port > 65535 {
			return fail(fmt.Sprintf("Invalid ersport %q: want a port number, 1 to 65535", v))
		}
		sc.ERSPort = port
	}
	if sc.ERSIP != "" && !validHost(sc.ERSIP) {
		return fail(fmt.Sprintf("Invalid ersip %q: want an IP address or a host name", sc.ERSIP))
	}
	if v, ok := p["keepalive"]; ok {
		switch strings.ToLower(v) {
		case "1", "true", "yes":
		case "0", "false", "no":
			sc.KeepAlive = false
		default:
			return fail(fmt.Sprintf("Invalid keepAlive %q: want 1 or 0", v))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.configs[sc.RoomID] != nil || slices.Contains(c.cfg.Device.Rooms(), sc.RoomID) {
		return fail(fmt.Sprintf("Room %s is already started: a room can only be started once", sc.RoomID))
	}
	// Reserved while it starts; it gets its configId, and is listed, once
	// it has started.
	e := &entry{WebRTCConfig: sc}
	c.configs[sc.RoomID] = e
	if err := c.start(ctx, e); err != nil {
		if c.configs[sc.RoomID] == e {
			delete(c.configs, sc.RoomID)
		}
		switch {
		case errors.Is(err, errStartStopped):
			return fail(fmt.Sprintf("Room %s was stopped while it started", sc.RoomID))
		case errors.Is(err, node.ErrRoomStarted):
			return fail(fmt.Sprintf("Room %s is already started: a room can only be started once", sc.RoomID))
		}
		return fail(fmt.Sprintf("Unable to start WebRTC Negotiation Service for room %s: %v", sc.RoomID, err))
	}
	e.ConfigID = c.nextID
	c.nextID++
	sc = e.WebRTCConfig
	if sc.KeepAlive {
		if err := c.save(); err != nil {
			// The promise of keepAlive is surviving a restart: rather no
			// room than one that silently would not.
			delete(c.configs, sc.RoomID)
			if e.stopRegister != nil {
				e.stopRegister()
			}
			c.cfg.Device.StopRoom(sc.RoomID)
			return fail(fmt.Sprintf("Unable to save the keepAlive command: %v", err))
		}
	}
	if sc.ERSIP != "" {
		c.log.Info("startWebRTC names a preferred bridge: the room is handed to it directly, and published in the mesh as always", "room", sc.RoomID, "ersip", sc.ERSIP, "ersport", sc.ERSPort)
	}
	return success(DescStarted, sc)
}

func (c *Controller) stopWebRTC(p map[string]string) Reply {
	c.mu.Lock()
	defer c.mu.Unlock()
	var e *entry
	roomID := p["roomid"]
	if v := p["configid"]; v != "" {
		id, err := strconv.Atoi(v)
		if err != nil {
			return fail(fmt.Sprintf("Invalid configId %q", v))
		}
		for _, x := range c.configs {
			if x.ConfigID == id && x.ConfigID != 0 {
				e = x
			}
		}
		if e == nil {
			return fail(fmt.Sprintf("No WebRTC configuration with configId %d", id))
		}
		roomID = e.RoomID
	}
	if roomID == "" {
		return fail("Parameter roomid or configId is required")
	}
	name, err := room.ParseName(roomID)
	if err != nil {
		return fail(fmt.Sprintf("Invalid roomid: %v", err))
	}
	if e == nil {
		e = c.configs[name.String()]
	}
	err = c.cfg.Device.StopRoom(name.String())
	if err != nil && (e == nil || e.running) {
		if errors.Is(err, node.ErrRoomNotStarted) {
			return fail(fmt.Sprintf("Room %s is not started", name))
		}
		return fail(fmt.Sprintf("Unable to stop WebRTC Negotiation Service for room %s: %v", name, err))
	}
	data := map[string]any{"roomid": name.String(), "ersip": "", "ersport": 0}
	if e != nil && e.starting != nil {
		e.starting() // its start returns errStartStopped
	}
	if e != nil && e.stopRegister != nil {
		e.stopRegister()
		e.stopRegister = nil
	}
	if e != nil {
		data["ersip"], data["ersport"], data["configId"] = e.ERSIP, e.ERSPort, e.ConfigID
		delete(c.configs, name.String())
		if e.KeepAlive {
			if err := c.save(); err != nil {
				return fail(fmt.Sprintf("Stopped room %s, but could not update the state file, so it may start again after a restart: %v", name, err))
			}
		}
	}
	return success(DescStopped, data)
}

func (c *Controller) listConfig() Reply {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := make([]WebRTCConfig, 0, len(c.configs))
	for _, e := range c.configs {
		if e.ConfigID == 0 {
			continue // a startWebRTC not answered yet
		}
		sc := e.WebRTCConfig
		sc.Token = "" // listed for anyone on the machine; the token stays in the state file
		list = append(list, sc)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ConfigID < list[j].ConfigID })
	return success(DescListed, map[string]any{"webrtc": list})
}

// save writes the keepAlive commands; the caller holds c.mu.
func (c *Controller) save() error {
	if c.cfg.StateFile == "" {
		return nil
	}
	var list []WebRTCConfig
	for _, e := range c.configs {
		if e.KeepAlive {
			list = append(list, e.WebRTCConfig)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ConfigID < list[j].ConfigID })
	return saveState(c.cfg.StateFile, list)
}

func validHost(h string) bool {
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}
