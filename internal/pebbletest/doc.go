// Package pebbletest runs Let's Encrypt's test CA, Pebble, inside a test
// process: its ACME server on loopback over TLS, its validation authority
// pointed at the ports the code under test answers challenges on, and a
// small DNS server that answers every name with 127.0.0.1, so that ACME
// clients can be tested end to end without the internet.
package pebbletest
