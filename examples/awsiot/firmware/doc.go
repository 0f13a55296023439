// Command firmware is a device that takes firmware updates as AWS IoT Jobs: it waits for its
// next job, downloads the image the job names over MQTT in blocks (MQTT-based file delivery),
// checks its size, SHA-256 and ECDSA P-256 signature against the public key it trusts, installs
// it (written to a temporary file, then renamed) and reports SUCCEEDED, or FAILED with the
// reason, to the job.
//
// The job document it understands:
//
//	{"operation": "firmware-update", "version": "1.1.0", "streamId": "fw-1-1-0", "fileId": 0,
//	 "size": 102400, "sha256": "<hex>", "signature": "<base64 ASN.1 ECDSA signature of the SHA-256>"}
//
// Against the embedded broker's AWS IoT emulation, which plays the operator too (it signs an
// image, serves it as a stream and queues the job):
//
//	go run ./examples/awsiot/firmware -emulate
//	go run ./examples/awsiot/firmware -emulate -tamper   # image and digest changed, signature not: FAILED
//
// Against AWS IoT Core: create the stream and the job with the AWS CLI (aws iot create-stream,
// aws iot create-job with a document as above), then
//
//	go run ./examples/awsiot/firmware -endpoint …-ats.iot.REGION.amazonaws.com -thing dev1 \
//	    -cert dev1.cert.pem -key dev1.private.key -pubkey signer.pub.pem -out firmware.bin
package main
