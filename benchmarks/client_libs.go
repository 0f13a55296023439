package benchmarks

// Libraries returns the clients in the comparison; the baseline (paho.mqtt.golang) comes first.
func Libraries() []Library {
	return append([]Library{PahoMQTT{}, AutoPaho{}}, fennecLibraries()...)
}
