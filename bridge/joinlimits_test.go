package bridge_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestOversizedJoinFieldsAreRefused: a page sending a nonce longer than
// the device accepts is told so, instead of being sent away with a
// misleading "unreachable device" (and the room's record forgotten).
func TestOversizedJoinFieldsAreRefused(t *testing.T) {
	base := startMesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dial(t, ctx, base)
	for _, tc := range []struct {
		name string
		data map[string]string
		want string
	}{
		{"nonce", map[string]string{"streamName": "sample", "nonce": strings.Repeat("n", 65)}, "nonce is longer than 64 bytes"},
		{"transport", map[string]string{"streamName": "sample", "transport": "carrier-pigeon"}, "unknown transport"},
		{"stream", map[string]string{"streamName": strings.Repeat("s", 300)}, "stream is longer than"},
	} {
		ack, err := c.EmitAck(ctx, "join", "demo", tc.data)
		if err != nil {
			t.Fatal(err)
		}
		var reason string
		if len(ack) == 0 || json.Unmarshal(ack[0], &reason) != nil || !strings.Contains(reason, tc.want) {
			t.Errorf("%s: join ack %s, want an error mentioning %q", tc.name, ack, tc.want)
		}
	}
	// A nonce of 64 bytes still plays.
	ack, err := c.EmitAck(ctx, "join", "demo", map[string]string{"streamName": "sample", "nonce": strings.Repeat("n", 64)})
	if err != nil || len(ack) != 2 || !strings.Contains(string(ack[1]), "12D3KooW") {
		t.Fatalf("join with a 64-byte nonce: %s %v", ack, err)
	}
}
