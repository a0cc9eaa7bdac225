package config

import "sync"

// Check validates the part of a config that only another package
// understands: a guard's own settings (the CSP sources it accepts, the
// header names the normaliser allows). Guards register theirs when they
// are linked in, as Caddy's modules register themselves, so that config
// imports no other package of Rampart while Parse still reports every
// problem with its line; bad reports one, by key path.
type Check func(c *Config, bad func(path, format string, args ...any))

var (
	checksMu sync.Mutex
	checks   []Check
)

// RegisterCheck adds a Check that every validation runs, after the
// config's own. Guards call it from init.
func RegisterCheck(f Check) {
	checksMu.Lock()
	defer checksMu.Unlock()
	checks = append(checks, f)
}

// registered returns the Checks registered so far.
func registered() []Check {
	checksMu.Lock()
	defer checksMu.Unlock()
	return checks
}
