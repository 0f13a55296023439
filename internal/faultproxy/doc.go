// Package faultproxy is a loopback TCP proxy that injects network faults between a client and a
// broker, for tests: drop (FIN), reset (RST), stall, delay, truncate mid-packet and half-open
// (forwarding stops, sockets stay open, so only keepalive can notice). Faults come from a
// seeded random source, and every one is logged with its number, so that a failing run replays
// with the same seed (timing still varies: the sequence of faults does not).
package faultproxy
