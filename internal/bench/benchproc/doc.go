// Package benchproc runs the system under test of a benchmark in a child
// process, so that its CPU time and memory are read apart from the load
// generator's: it starts the child with GOMAXPROCS set, waits for its
// "READY ..." line, reads its CPU time and RSS from /proc, and stops it.
// Linux only for the /proc readings (they read as zero elsewhere).
package benchproc
