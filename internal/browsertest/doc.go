// Package browsertest drives a real headless Chromium from Go tests, so that
// the player page is tested in the browser it is written for.
//
// New starts one fresh browser per test (its own profile in t.TempDir) and
// stops it, and everything it started, when the test ends. Eval runs
// JavaScript in the page; WaitFor polls a condition and, when it times out,
// fails the test with the page's console log and the player's stage, which is
// usually all one needs to see why.
//
// The player's own browser tests live next to the player, in package web
// (web/*_test.go); demo, internal/nattest and the player benchmark use this
// package too. The package only drives the browser; it knows the player
// only through the DOM contract of package web (document.body.dataset.stage,
// #stage, #message).
package browsertest
