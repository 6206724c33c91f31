package access

import (
	"errors"
	"testing"
	"time"
)

func TestTokens(t *testing.T) {
	s := NewStore(true)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }

	if err := s.Check("r", "", "1.2.3.4"); !errors.Is(err, ErrTokenRequired) {
		t.Errorf("no token: %v", err)
	}
	if err := s.Check("r", "nope", "1.2.3.4"); !errors.Is(err, ErrTokenUnknown) {
		t.Errorf("unknown token: %v", err)
	}
	tok, err := s.AddToken("")
	if err != nil || len(tok.Token) < 16 {
		t.Fatalf("AddToken: %+v %v", tok, err)
	}
	if err := s.Check("r", tok.Token, "1.2.3.4"); err != nil {
		t.Fatalf("first use: %v", err)
	}
	// The same client may come back (ERS players reconnect in a loop).
	now = now.Add(5 * time.Minute)
	if err := s.Check("r", tok.Token, "1.2.3.4"); err != nil {
		t.Errorf("same client within 10 minutes: %v", err)
	}
	if err := s.Check("r", tok.Token, "5.6.7.8"); !errors.Is(err, ErrTokenUsed) {
		t.Errorf("another client: %v", err)
	}
	now = now.Add(6 * time.Minute)
	if err := s.Check("r", tok.Token, "1.2.3.4"); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("after 11 minutes: %v", err)
	}
	if err := s.Check("r", tok.Token, "1.2.3.4"); !errors.Is(err, ErrTokenUnknown) {
		t.Errorf("expired token is forgotten: %v", err)
	}
	if _, err := s.AddToken("mine"); err != nil {
		t.Fatal(err)
	}
	if len(s.Tokens()) != 1 || !s.DelToken("mine") || s.DelToken("mine") {
		t.Error("listing or deleting tokens")
	}
	if err := s.Check("r", "mine", "1.2.3.4"); !errors.Is(err, ErrTokenUnknown) {
		t.Errorf("deleted token: %v", err)
	}
}

func TestTokensOff(t *testing.T) {
	s := NewStore(false)
	if err := s.Check("r", "", "x"); err != nil {
		t.Errorf("tokens off: %v", err)
	}
}

func TestAllowedRooms(t *testing.T) {
	s := NewStore(false)
	if err := s.Check("any", "", "x"); err != nil {
		t.Fatalf("empty list allows any room: %v", err)
	}
	s.AddRoom("frontdoor")
	if err := s.Check("garage", "", "x"); !errors.Is(err, ErrRoomNotAllowed) {
		t.Errorf("room not in list: %v", err)
	}
	if err := s.Check("frontdoor", "", "x"); err != nil {
		t.Errorf("allowed room: %v", err)
	}
	if got := s.Rooms(); len(got) != 1 || got[0] != "frontdoor" {
		t.Errorf("Rooms = %v", got)
	}
	s.DelRoom("frontdoor")
	if err := s.Check("garage", "", "x"); err != nil {
		t.Errorf("after the last room is removed, any room: %v", err)
	}
	if s.AddRoom("") == nil {
		t.Error("empty room name accepted")
	}
}
