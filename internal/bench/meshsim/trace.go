package meshsim

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
)

// tracer follows one DHT query through kad-dht's query events: it counts
// the requests sent and works out how many hops away the first peer holding
// the record was. A peer taken from the querier's own routing table is one
// hop away; a peer first named in the answer of a peer h hops away is h+1.
type tracer struct {
	holders map[peer.ID]bool // peers known to store the record

	mu        sync.Mutex
	msgs      int
	dials     int
	firstHold int // hops to the first holder that answered; -1 none yet
	hops      map[peer.ID]int
	attached  bool
	done      chan struct{} // closed when the query's events end
}

func newTracer(holders map[peer.ID]bool) *tracer {
	return &tracer{holders: holders, firstHold: -1, hops: map[peer.ID]int{}, done: make(chan struct{})}
}

// attach registers for the query events of ctx's query. It is the
// mesh.ResolverOptions.QueryContext hook, and is used for Publish too.
func (t *tracer) attach(ctx context.Context, _ string) context.Context {
	t.mu.Lock()
	if t.attached { // one query per tracer
		t.mu.Unlock()
		return ctx
	}
	t.attached = true
	t.mu.Unlock()
	ctx, events := routing.RegisterForQueryEvents(ctx)
	go func() {
		defer close(t.done)
		for ev := range events {
			t.observe(ev)
		}
	}()
	return ctx
}

func (t *tracer) observe(ev *routing.QueryEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch ev.Type {
	case routing.SendingQuery, routing.Value: // a GET_VALUE/FIND_NODE, or a PUT_VALUE
		t.msgs++
		if _, ok := t.hops[ev.ID]; !ok {
			t.hops[ev.ID] = 1
		}
	case routing.DialingPeer: // kad-dht was not connected to the peer it asks next
		t.dials++
	case routing.PeerResponse:
		h, ok := t.hops[ev.ID]
		if !ok {
			h = 1
		}
		if t.firstHold < 0 && t.holders[ev.ID] {
			t.firstHold = h
		}
		for _, ai := range ev.Responses {
			if _, ok := t.hops[ai.ID]; !ok {
				t.hops[ai.ID] = h + 1
			}
		}
	}
}

// wait returns the counts once the query's context has ended.
func (t *tracer) wait() (msgs, hops, dials int) {
	t.mu.Lock()
	attached := t.attached
	t.mu.Unlock()
	if attached {
		<-t.done
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.msgs, t.firstHold, t.dials
}
