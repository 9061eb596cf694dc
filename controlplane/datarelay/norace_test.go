//go:build !race

package datarelay

const raceEnabled = false
