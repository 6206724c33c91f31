package control

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// registerPath is bridge.RegisterPath: where a bridge takes a room record
// handed over directly. (Spelled out here so the device does not import
// the bridge.)
const registerPath = "/ersmesh/register"

// DefaultRegisterInterval is how often a room started with ersip/ersport
// hands its fresh record to that bridge: well inside the record's expiry.
const DefaultRegisterInterval = 30 * time.Second

// defaultERSPort is ERS's port, used when startWebRTC gives ersip alone.
const defaultERSPort = 4545

// registerURL is where the bridge at ip:port takes records. Port 443 is
// HTTPS: a bridge on the internet serves TLS there (docs/production.md);
// elsewhere plain HTTP, which a TLS bridge's port-80 listener redirects
// with its body.
func registerURL(ip string, port int) string {
	scheme := "http://"
	if port == 443 {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(ip, strconv.Itoa(port)) + registerPath
}

// registerWith hands e's room record to the bridge startWebRTC named, at
// once and then every RegisterInterval, until the room stops or the
// Controller closes. The room is in the DHT as well; this only spares that
// bridge the lookup, as EMS registering with its ERS did. Called with c.mu
// held.
func (c *Controller) registerWith(e *entry) {
	if e.ERSIP == "" || e.stopRegister != nil {
		return
	}
	port := e.ERSPort
	if port == 0 {
		port = defaultERSPort
	}
	url := registerURL(e.ERSIP, port)
	ctx, cancel := context.WithCancel(c.ctx)
	e.stopRegister = cancel
	room := e.RoomID
	c.wg.Go(func() {
		client := &http.Client{Timeout: 5 * time.Second}
		failing := false
		for {
			err := c.register(ctx, client, url, room)
			switch {
			case err != nil && !failing && ctx.Err() == nil:
				c.log.Warn("cannot register the room with the bridge startWebRTC named; it is still in the mesh", "room", room, "bridge", url, "err", err)
				failing = true
			case err == nil && failing:
				c.log.Info("registered the room with its bridge again", "room", room, "bridge", url)
				failing = false
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(c.cfg.RegisterInterval):
			}
		}
	})
}

func (c *Controller) register(ctx context.Context, client *http.Client, url, room string) error {
	rec, err := c.cfg.Device.RoomRecord(room)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(rec))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		var b [200]byte
		n, _ := resp.Body.Read(b[:])
		return fmt.Errorf("bridge answered %s: %s", resp.Status, bytes.TrimSpace(b[:n]))
	}
	return nil
}
