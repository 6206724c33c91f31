// Package firefoxtest drives a real headless Firefox from Go tests over
// WebDriver BiDi, the W3C protocol Firefox speaks natively, so that the
// player page is tested in a second engine (Gecko) besides Chromium.
//
// New starts one fresh Firefox per test with its own profile, whose prefs
// keep it off the network (no updates, telemetry, remote settings, safe
// browsing, captive-portal or connectivity checks, DNS prefetch or DoH) and
// let WebRTC use loopback candidates; it stops Firefox and removes the
// profile when the test ends. Navigate, Eval and WaitFor mirror package
// browsertest, whose DOM contract with the player they share.
//
// Without Firefox the test is skipped, unless CI=true: then it fails.
package firefoxtest
