// Package topic validates MQTT topic names and topic filters, matches filters against names, and
// parses shared subscriptions. It has no state and no dependencies; the rules are those of MQTT
// 3.1.1 and MQTT 5.0, which agree on them.
//
// # Checking what a user typed
//
// Before publishing, check the topic name with ValidateName; before subscribing, check the filter
// with ValidateFilter. Both return a *Error (errors.Is(err, ErrInvalid)) that names the rule the
// string breaks, e.g. "[MQTT-4.7.1-2]" for a '#' that is not the last level:
//
//	if err := topic.ValidateFilter(f); err != nil {
//		return err // topic: '#' must be a whole level and the last one: "a/#/b" [MQTT-4.7.1-2]
//	}
//
// # Routing a message
//
// Match(filter, name) says whether a subscription receives a message. '+' matches one level, '#'
// the parent level and everything below it, and a filter starting with a wildcard never matches
// a name starting with '$' [MQTT-4.7.2-1], so "#" does not receive "$SYS/..." topics. Match does
// not allocate.
//
// # Shared subscriptions
//
// "$share/<group>/<filter>" subscriptions are delivered to one member of the group. ParseShared
// splits one into its group and filter (and passes other filters through unchanged); match
// messages against the returned filter.
package topic
