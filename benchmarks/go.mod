module github.com/fennec-mqtt/fennec/benchmarks

go 1.26

require github.com/fennec-mqtt/fennec v0.0.0

replace github.com/fennec-mqtt/fennec => ../
