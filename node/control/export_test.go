package control

// The state file's reader and writer, for the external tests.
var (
	LoadState = loadState
	SaveState = saveState
)

// Running reports whether room's start has answered and it is served.
func (c *Controller) Running(room string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.configs[room]
	return e != nil && e.running
}
