package benchmarks

// fennecLibraries returns the Fennec client configurations in the comparison.
func fennecLibraries() []Library { return nil }
