// Package topic validates MQTT topic names and topic filters, matches filters against names
// (including the rule that '#' and '+' at the first level do not match topics starting with '$'),
// and parses shared subscriptions ($share/<group>/<filter>).
package topic
