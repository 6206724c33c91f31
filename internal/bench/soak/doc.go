// Package soak runs the mesh for a long time with viewers joining and
// leaving all along, and samples the process's footprint (resident memory,
// goroutines, file descriptors, heap) over time: a slow leak shows as a
// slope. One process holds a bootstrap, a device, two bridges (demo.Start
// and one more on its mesh) and the viewers (internal/ersviewer, pion),
// which join every Interval through the bridges in turn, play for Life and
// leave, one in five by dropping its socket without a leave.
package soak
