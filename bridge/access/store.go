package access

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Errors of Check, in words fit for the viewer.
var (
	ErrTokenRequired  = errors.New("this bridge requires a token to join")
	ErrTokenUnknown   = errors.New("invalid token")
	ErrTokenUsed      = errors.New("token already used by another client")
	ErrTokenExpired   = errors.New("token expired")
	ErrRoomNotAllowed = errors.New("room not allowed on this bridge")
	ErrFull           = errors.New("too many entries")
)

// TokenLifetime is how long a token stays valid for the client that first
// used it, as in ERS.
const TokenLifetime = 10 * time.Minute

// Bounds on the tables, against an admin script gone wrong.
const (
	maxTokens = 100000
	maxRooms  = 100000
	maxLen    = 256
)

// Token is one viewer token and its state.
type Token struct {
	Token   string    `json:"token"`
	Created time.Time `json:"created"`
	// Client is who used it first ("" while unused); Expires is set then.
	Client  string    `json:"client,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
}

// Store holds tokens and allowed rooms.
type Store struct {
	// TokensRequired makes every join need a token (ERS tokensEnabled).
	tokensRequired bool
	now            func() time.Time

	mu     sync.Mutex
	tokens map[string]*Token
	rooms  map[string]bool // empty: any room
}

// NewStore returns an empty store; tokensRequired is ERS's tokensEnabled.
func NewStore(tokensRequired bool) *Store {
	return &Store{tokensRequired: tokensRequired, now: time.Now, tokens: map[string]*Token{}, rooms: map[string]bool{}}
}

// TokensRequired reports whether joins need a token.
func (s *Store) TokensRequired() bool { return s.tokensRequired }

// Check decides whether client (a stable id such as its IP address) may
// join room with token. A first use binds the token to the client for
// TokenLifetime.
func (s *Store) Check(room, token, client string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.rooms) > 0 && !s.rooms[room] {
		return ErrRoomNotAllowed
	}
	if !s.tokensRequired {
		return nil
	}
	if token == "" {
		return ErrTokenRequired
	}
	t := s.tokens[token]
	if t == nil {
		return ErrTokenUnknown
	}
	now := s.now()
	switch {
	case t.Client == "":
		t.Client, t.Expires = client, now.Add(TokenLifetime)
		return nil
	case t.Client != client:
		return ErrTokenUsed
	case now.After(t.Expires):
		delete(s.tokens, token)
		return ErrTokenExpired
	}
	return nil
}

// AddToken adds token, or a fresh random one if token is "".
func (s *Store) AddToken(token string) (Token, error) {
	if token == "" {
		b := make([]byte, 12)
		rand.Read(b)
		token = base64.RawURLEncoding.EncodeToString(b)
	}
	if len(token) > maxLen {
		return Token{}, fmt.Errorf("token longer than %d bytes", maxLen)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked()
	if t, ok := s.tokens[token]; ok {
		return *t, nil
	}
	if len(s.tokens) >= maxTokens {
		return Token{}, fmt.Errorf("%w: %d tokens", ErrFull, maxTokens)
	}
	t := &Token{Token: token, Created: s.now()}
	s.tokens[token] = t
	return *t, nil
}

// DelToken removes token and reports whether it was there.
func (s *Store) DelToken(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.tokens[token]
	delete(s.tokens, token)
	return ok
}

// Tokens lists the tokens, oldest first, dropping expired ones.
func (s *Store) Tokens() []Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked()
	out := make([]Token, 0, len(s.tokens))
	for _, t := range s.tokens {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b Token) int { return a.Created.Compare(b.Created) })
	return out
}

func (s *Store) sweepLocked() {
	now := s.now()
	for k, t := range s.tokens {
		if t.Client != "" && now.After(t.Expires) {
			delete(s.tokens, k)
		}
	}
}

// AddRoom allows room; once any room is allowed, only allowed rooms may be
// joined.
func (s *Store) AddRoom(room string) error {
	if room == "" || len(room) > maxLen {
		return fmt.Errorf("room name must be 1 to %d bytes", maxLen)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.rooms) >= maxRooms && !s.rooms[room] {
		return fmt.Errorf("%w: %d rooms", ErrFull, maxRooms)
	}
	s.rooms[room] = true
	return nil
}

// DelRoom removes room from the allowed list and reports whether it was
// there. Removing the last one allows every room again.
func (s *Store) DelRoom(room string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := s.rooms[room]
	delete(s.rooms, room)
	return ok
}

// Rooms lists the allowed rooms, sorted; empty means any.
func (s *Store) Rooms() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.rooms))
	for r := range s.rooms {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}
