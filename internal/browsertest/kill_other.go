//go:build !linux

package browsertest

// killLeftovers does nothing here: chromedp's own cleanup is all there is
// outside Linux, where the helpers' command lines are not in /proc.
func killLeftovers(string) {}
