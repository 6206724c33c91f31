package bootstrap

import (
	"context"
	"fmt"

	"github.com/ersmesh/ersmesh/mesh"
)

// New starts a bootstrap node. cfg.Server and cfg.RelayService are forced
// on: a bootstrap node exists to answer DHT queries and to relay
// signalling to devices behind NAT.
func New(ctx context.Context, cfg mesh.Config) (*mesh.Host, error) {
	cfg.Server = true
	cfg.RelayService = true
	n, err := mesh.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start bootstrap node: %w", err)
	}
	return n, nil
}
