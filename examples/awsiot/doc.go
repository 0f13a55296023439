// Command awsiot is a device talking to AWS IoT Core with its certificate: it connects over TLS
// with mutual TLS (SNI and the Amazon root CAs set by package awsiot), subscribes to its shadow's
// delta, reports its state, applies the desired state it is sent, and prints every answer.
//
// Against the embedded broker's AWS IoT emulation, with no setup:
//
//	go run ./examples/awsiot -emulate
//
// Against AWS IoT Core (the endpoint from aws iot describe-endpoint --endpoint-type iot:Data-ATS):
//
//	go run ./examples/awsiot -endpoint a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com \
//	    -thing dev1 -cert dev1.cert.pem -key dev1.private.key
//
// and change the desired state in the console (or: fennec shadow update --thing dev1 --desired
// '{"led":"on"}' ...) while it waits.
package main
