//go:build race

package datarelay

// The race detector makes sync.Pool drop a share of what is put back on
// purpose, so json.Valid's pooled scanner allocates now and then.
const raceEnabled = true
