// Package mesh owns ersmesh's libp2p side that every role shares: the host
// and its persisted identity, the private Kademlia DHT (protocol prefix
// "/ersmesh", room records only), publishing a device's rooms in it, and
// resolving rooms to devices for bridges. It also bounds what strangers can
// make a node hold (docs/hardening.md): connection watermarks and Protector
// for connections that carry sessions (connmgr.go), a routing table
// diversity filter (diversity.go) and room record quotas per publisher
// (quota.go).
//
// It knows nothing of signalling, media or HTTP: the device, the bridge and
// the bootstrap role build on Host and register their own protocols on
// Host.Libp2p. What a room name and a room record are is the room package's
// business; mesh only puts records in the DHT and gets them out.
//
// Lifetimes: a Host owns every goroutine it starts, including those of its
// Publishers and Resolvers, and Host.Close stops and waits for all of them
// before it closes the DHT and the host.
package mesh
