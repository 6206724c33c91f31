// Package webhook posts a device's events (node.Event) as JSON to an
// operator's URL, the way an EMS notifies its event listeners.
//
// It owns one queue and the one goroutine that drains it. Send never
// blocks: the device calls it on its signalling and media goroutines, so
// when the receiver is slow or down the queue fills and further events are
// dropped and counted, never waited for. It must not reach into the
// device: it only sees the events it is given.
package webhook
