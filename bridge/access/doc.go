// Package access decides which viewers a bridge lets join, as ERS
// administrators know it: single-use viewer tokens and the allowed-rooms
// list. Both are bridge-side checks for compatibility with ERS; they keep
// strangers off a bridge, not off a device. A device that wants its stream
// protected checks its own room secret (package trust), because a bridge
// is not trusted.
//
// The Store is in memory and safe for concurrent use; bridge/admin edits
// it over HTTP and package bridge consults it on every join.
package access
