//go:build !faultinject

package crashpoint

// Set is the crash points armed in this process: in a binary built without
// the faultinject tag, never any.
type Set struct{}

// Hit does nothing: nothing is armed in this build.
func (Set) Hit(string) {}

// String is empty: nothing is armed in this build.
func (Set) String() string { return "" }
