// Package role composes each role of ersmesh (device, bridge, bootstrap,
// turn) from its configuration. It is the one composition root: the
// command line, the demo, the load targets and the NAT tests all build a
// role with the same constructor, so a role runs the same way wherever it
// runs.
//
// Each role has a Config (DefaultDeviceConfig and the like give the
// defaults of the command line), a Flags method that binds every field a
// user sets to its flag (package internal/config then gives each flag its
// file key and environment variable), and a constructor New<Role>(ctx,
// cfg) that checks the config, brings the role up and returns it. Start
// opens its servers; Close stops everything the role started, newest
// first, waits for it, and may be called more than once. A config error
// is a *ConfigError naming the key to fix.
//
// The role packages proper (node, bridge, bootstrap, turnserver, mesh,
// telemetry) know nothing of this one; it must not hold behaviour of its
// own beyond wiring them together.
package role
