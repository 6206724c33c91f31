package talkback

import "sync"

// Floor lets one holder talk at a time on a stream: the first to take it
// keeps it until it lets go; nobody can take it from the holder.
type Floor struct {
	mu     sync.Mutex
	holder any    // a comparable identity; nil when free
	name   string // what the others are told
}

// Take gives the floor to who (named name) if it is free or already
// theirs. Otherwise it reports false and the holder's name.
func (f *Floor) Take(who any, name string) (ok bool, holder string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holder == nil || f.holder == who {
		f.holder, f.name = who, name
		return true, name
	}
	return false, f.name
}

// Release frees the floor if who holds it.
func (f *Floor) Release(who any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holder == who {
		f.holder, f.name = nil, ""
	}
}

// Holder is the name of who holds the floor, "" when it is free.
func (f *Floor) Holder() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.name
}
