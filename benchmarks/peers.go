package benchmarks

// The comparison peers, pinned in this module's go.mod so benchmark files can use them.
import (
	_ "github.com/eclipse/paho.golang/autopaho"
	_ "github.com/eclipse/paho.golang/packets"
	_ "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/eclipse/paho.mqtt.golang/packets"
)
