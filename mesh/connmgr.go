package mesh

import (
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	basicconnmgr "github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

// Connection manager watermarks (Config.ConnLow, ConnHigh, ConnGrace). When
// a node holds more than ConnHigh connections, libp2p closes the least
// valuable unprotected ones until ConnLow remain. The defaults leave room
// for a bridge that talks to a few hundred devices besides its DHT peers;
// libp2p's own (160/192) would trim a busy bridge's devices. Connections
// that carry viewers are protected (Protector) and never trimmed.
const (
	DefaultConnLow   = 400
	DefaultConnHigh  = 600
	DefaultConnGrace = time.Minute
)

// newConnManager builds the host's connection manager from cfg.
func newConnManager(cfg *Config) (*basicconnmgr.BasicConnMgr, error) {
	low, high, grace := cfg.ConnLow, cfg.ConnHigh, cfg.ConnGrace
	if low <= 0 {
		low = DefaultConnLow
	}
	if high <= 0 {
		high = max(DefaultConnHigh, low+low/2)
	}
	if grace <= 0 {
		grace = DefaultConnGrace
	}
	if high < low {
		return nil, fmt.Errorf("connection manager: high watermark %d is below the low watermark %d", high, low)
	}
	cm, err := basicconnmgr.NewConnManager(low, high, basicconnmgr.WithGracePeriod(grace))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	return cm, nil
}

// Protector keeps the connection manager from trimming connections to peers
// that carry live sessions: a device protects each bridge with a viewer, a
// bridge each device it relays a viewer to. Protection is counted per peer,
// so the last session to end lifts it, not the first.
type Protector struct {
	cm  connmgr.ConnManager
	tag string

	mu   sync.Mutex // guards held and orders Protect/Unprotect with it
	held map[peer.ID]int
}

// NewProtector returns a Protector that protects under tag on h's
// connection manager. Each role uses its own tag, so two roles sharing a
// host do not lift each other's protection.
func NewProtector(h host.Host, tag string) *Protector {
	return &Protector{cm: h.ConnManager(), tag: tag, held: make(map[peer.ID]int)}
}

// Hold protects the connections to id until release is called; release
// may be called more than once.
func (p *Protector) Hold(id peer.ID) (release func()) {
	p.mu.Lock()
	if p.held[id]++; p.held[id] == 1 {
		p.cm.Protect(id, p.tag)
	}
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.held[id]--; p.held[id] <= 0 {
				delete(p.held, id)
				p.cm.Unprotect(id, p.tag)
			}
		})
	}
}

// Peers returns how many peers are protected now.
func (p *Protector) Peers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.held)
}
