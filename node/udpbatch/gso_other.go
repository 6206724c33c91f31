//go:build !linux

package udpbatch

import "net"

// Elsewhere than on Linux no GSO: batches are sent datagram by datagram
// (x/net's WriteBatch).
const gsoSpace = 0

func gsoSupported(*net.UDPConn) bool { return false }

func appendGSO(oob []byte, _ int) []byte { return oob }
