package turnserver

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the TURN REST scheme fixes HMAC-SHA1
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits on a TURN REST username. STUN allows 513 bytes (RFC 8489 §14.3);
// ours are far shorter, and anything longer is not one of ours.
const (
	maxUsernameLen  = 256
	maxIDLen        = 128
	maxExpiryDigits = 12 // seconds since 1970 until the year 33658
)

// ErrBadUsername is wrapped by every error of ParseUsername.
var ErrBadUsername = errors.New("malformed TURN username")

// ErrExpired is returned for credentials whose expiry has passed.
var ErrExpired = errors.New("TURN credentials expired")

// Credentials are one short-lived TURN username and password.
type Credentials struct {
	Username string
	Password string
	Expires  time.Time
}

// NewCredentials mints credentials for id, valid until now+ttl, in the
// TURN REST scheme (draft-uberti-behave-turn-rest-00 §2.2): username
// "expiry:id" with expiry in Unix seconds, password
// base64(HMAC-SHA1(secret, username)). id must be a valid user id (see
// ParseUsername); a bad one is an error, not a silently altered username.
func NewCredentials(secret, id string, ttl time.Duration, now time.Time) (Credentials, error) {
	if secret == "" {
		return Credentials{}, errors.New("TURN credentials need a shared secret")
	}
	if err := checkID(id); err != nil {
		return Credentials{}, err
	}
	exp := now.Add(ttl).Truncate(time.Second)
	username := strconv.FormatInt(exp.Unix(), 10) + ":" + id
	return Credentials{Username: username, Password: password(secret, username), Expires: exp}, nil
}

func password(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ParseUsername splits a TURN REST username "expiry:id" into its expiry
// and user id. It only checks the form; whether the expiry has passed is
// the caller's business (the server uses checkUsername).
func ParseUsername(u string) (expiry time.Time, id string, err error) {
	if len(u) > maxUsernameLen {
		return time.Time{}, "", fmt.Errorf("%w: longer than %d bytes", ErrBadUsername, maxUsernameLen)
	}
	ts, id, ok := strings.Cut(u, ":")
	if !ok {
		return time.Time{}, "", fmt.Errorf("%w: want expiry:id", ErrBadUsername)
	}
	if ts == "" || len(ts) > maxExpiryDigits {
		return time.Time{}, "", fmt.Errorf("%w: expiry must be 1 to %d digits", ErrBadUsername, maxExpiryDigits)
	}
	var secs int64
	for _, c := range []byte(ts) {
		if c < '0' || c > '9' {
			return time.Time{}, "", fmt.Errorf("%w: expiry must be decimal seconds", ErrBadUsername)
		}
		secs = secs*10 + int64(c-'0')
	}
	if err := checkID(id); err != nil {
		return time.Time{}, "", err
	}
	return time.Unix(secs, 0), id, nil
}

// checkID allows what bridges use as ids (Socket.IO session ids are
// base64url) and nothing that could confuse a log line or a colon split.
func checkID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("%w: user id must be 1 to %d characters", ErrBadUsername, maxIDLen)
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == '~' || c == '@':
		default:
			return fmt.Errorf("%w: user id has a character outside A-Z a-z 0-9 - _ . ~ @", ErrBadUsername)
		}
	}
	return nil
}

// checkUsername is what the server does with a username before it trusts
// it: the form, then the expiry, then a bound on how far ahead the expiry
// may be, so that a credential minted by mistake with a huge TTL does not
// live for ever. It returns the user id quotas are counted against.
func checkUsername(u string, now time.Time, maxTTL time.Duration) (string, error) {
	exp, id, err := ParseUsername(u)
	if err != nil {
		return "", err
	}
	if !now.Before(exp) {
		return "", fmt.Errorf("%w at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	if maxTTL > 0 && exp.Sub(now) > maxTTL {
		return "", fmt.Errorf("%w: expiry %s is more than %s ahead", ErrBadUsername, exp.UTC().Format(time.RFC3339), maxTTL)
	}
	return id, nil
}
