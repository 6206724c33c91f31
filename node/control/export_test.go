package control

// The state file's reader and writer, for the external tests.
var (
	LoadState = loadState
	SaveState = saveState
)
