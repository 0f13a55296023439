package topic_test

import (
	"fmt"

	"github.com/fennec-mqtt/fennec/topic"
)

func ExampleMatch() {
	fmt.Println(topic.Match("sport/tennis/+", "sport/tennis/player1"))
	fmt.Println(topic.Match("sport/#", "sport"))
	fmt.Println(topic.Match("#", "$SYS/broker/uptime")) // $-topics need an explicit first level
	// Output:
	// true
	// true
	// false
}

func ExampleParseShared() {
	group, filter, err := topic.ParseShared("$share/workers/jobs/+")
	fmt.Println(group, filter, err)
	_, _, err = topic.ParseShared("$share/workers")
	fmt.Println(err)
	// Output:
	// workers jobs/+ <nil>
	// topic: shared subscription has no topic filter: "$share/workers" [MQTT-4.8.2-2]
}

func ExampleValidateFilter() {
	fmt.Println(topic.ValidateFilter("sensors/+/temperature"))
	fmt.Println(topic.ValidateFilter("sensors/#/temperature"))
	// Output:
	// <nil>
	// topic: '#' must be a whole level and the last one: "sensors/#/temperature" [MQTT-4.7.1-2]
}
