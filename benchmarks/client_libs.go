package benchmarks

// Libraries returns the clients in the comparison; the baseline (paho.mqtt.golang) comes first.
func Libraries() []Library {
	return append([]Library{PahoMQTT{}, AutoPaho{}}, fennecLibraries()...)
}

// Ceiling returns Raw, the minimal client that shows what the broker allows at best.
func Ceiling() Library { return Raw{} }
