// Package testdevice runs a device for tests that restart it: its identity
// (a key file) and its listening port survive a restart, as a camera's
// would, so that bridges and viewers meet the same device again. It is
// apart from testmesh because it imports package node, whose own tests use
// testmesh.
package testdevice
