// Package config gives every flag of a command a YAML config-file key and
// an environment variable, so that one role can be configured three ways
// with one set of names: the flag --record-ttl is the key record-ttl and
// the variable ERSMESH_RECORD_TTL. A flag on the command line wins over the
// environment, which wins over the file, which wins over the default.
//
// It works on a flag.FlagSet and knows nothing of the roles; cmd/ersmesh
// calls it from its one parse helper.
package config
