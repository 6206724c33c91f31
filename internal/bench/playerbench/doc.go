// Package playerbench measures what a viewer waits: the time from the
// player's join to the first video frame it presents, in headless Chromium
// (internal/browsertest) against the demo (bootstrap, bridge and device on
// loopback, demo.Start), with a cold bridge (a fresh demo per run: empty
// resolver cache, no connection to the device yet) and a warm one (one demo,
// the same room joined again).
//
// The timing is taken in the page without changing the player: a script
// installed before the page's own stamps the Socket.IO "join" packet as it
// is sent and the first frame the <video> presents
// (requestVideoFrameCallback), both with performance.now(). NewBrowser and
// FirstFrame lend the same browser and hooks to other comparisons
// (package go2rtcbench): navigation start to first frame of any page.
package playerbench
