package role

import "fmt"

// ConfigError is a configuration value a role cannot run with. Key is the
// flag's name, which is also its config-file key (and, as ERSMESH_<KEY>,
// its environment variable).
type ConfigError struct {
	Key string
	Err error
}

func (e *ConfigError) Error() string { return fmt.Sprintf("--%s: %v", e.Key, e.Err) }
func (e *ConfigError) Unwrap() error { return e.Err }

// keyErr makes a *ConfigError for key.
func keyErr(key, format string, args ...any) error {
	return &ConfigError{Key: key, Err: fmt.Errorf(format, args...)}
}
