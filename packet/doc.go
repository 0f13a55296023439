// Package packet encodes and decodes every MQTT control packet of MQTT 3.1.1 and MQTT 5.0.
//
// It is a pure codec: no goroutines, no network. Rules the specifications put on the wire are
// enforced on both encode and decode, and each rejection names the rule it enforces.
package packet
