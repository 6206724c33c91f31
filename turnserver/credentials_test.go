package turnserver

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCredentialsRoundTrip(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c, err := NewCredentials("s3cret", "viewer-1", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Username != "1800003600:viewer-1" {
		t.Fatalf("username %q", c.Username)
	}
	// The TURN REST draft's password: base64(HMAC-SHA1(secret, username)),
	// what coturn's use-auth-secret also checks.
	mac := hmac.New(sha1.New, []byte("s3cret"))
	mac.Write([]byte("1800003600:viewer-1"))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); c.Password != want {
		t.Fatalf("password %q, want %q", c.Password, want)
	}
	id, err := checkUsername(c.Username, now, 48*time.Hour)
	if err != nil || id != "viewer-1" {
		t.Fatalf("checkUsername = %q, %v", id, err)
	}
	if _, err := checkUsername(c.Username, now.Add(time.Hour), 48*time.Hour); !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: %v, want ErrExpired", err)
	}
	if _, err := checkUsername(c.Username, now.Add(-72*time.Hour), 48*time.Hour); !errors.Is(err, ErrBadUsername) {
		t.Fatalf("expiry too far ahead: %v, want ErrBadUsername", err)
	}
	if _, err := NewCredentials("", "x", time.Hour, now); err == nil {
		t.Fatal("credentials without a secret")
	}
	if _, err := NewCredentials("s", "a:b", time.Hour, now); !errors.Is(err, ErrBadUsername) {
		t.Fatalf("id with a colon: %v", err)
	}
}

func TestParseUsernameRefuses(t *testing.T) {
	for _, u := range []string{
		"", "viewer", ":viewer", "123:", "12a:viewer", "-5:viewer", "+5:viewer",
		"1234567890123:viewer", "123:vie wer", "123:a:b", "123:\x00", "123:é",
		"123:" + strings.Repeat("a", maxIDLen+1), strings.Repeat("1", 300),
	} {
		if _, _, err := ParseUsername(u); !errors.Is(err, ErrBadUsername) {
			t.Errorf("ParseUsername(%q) = %v, want ErrBadUsername", u, err)
		}
	}
}

func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{"1800003600:viewer-1", "0:a", "", ":", "99999999999:x@y", "1:" + strings.Repeat("z", 200), "1:a:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		exp, id, err := ParseUsername(u)
		if err != nil {
			if !errors.Is(err, ErrBadUsername) {
				t.Fatalf("error %v does not wrap ErrBadUsername", err)
			}
			return
		}
		if len(u) > maxUsernameLen || id == "" || strings.Contains(id, ":") {
			t.Fatalf("accepted %q as id %q", u, id)
		}
		// What parses must be what NewCredentials would build.
		c, err := NewCredentials("k", id, exp.Sub(time.Unix(0, 0)), time.Unix(0, 0))
		if err != nil {
			t.Fatalf("parsed id %q not accepted back: %v", id, err)
		}
		if _, id2, err := ParseUsername(c.Username); err != nil || id2 != id {
			t.Fatalf("round trip of %q: %q, %v", u, id2, err)
		}
	})
}
