// Package awsiot connects Go devices and gateways to AWS IoT Core: a client configuration that
// is right the first time (ATS endpoint, port 8883, or 443 with ALPN x-amzn-mqtt-ca; SNI; the
// Amazon root CAs embedded; a keep-alive AWS accepts), AWS's limits checked before anything is
// sent, and the Device Shadow service.
//
// It is an adapter over the root package and pki: the core never imports it. Everything here
// runs offline against the embedded broker's AWS emulation (fennec broker --aws), which also
// serves the Device Shadow topics.
//
// AWS documentation followed (each rule cites its page):
//   - endpoints and ports: https://docs.aws.amazon.com/iot/latest/developerguide/protocols.html
//   - server authentication and the root CAs: https://docs.aws.amazon.com/iot/latest/developerguide/server-authentication.html
//   - limits: https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits
//   - Device Shadow MQTT topics and documents: https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-mqtt.html
//     and https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-document.html
package awsiot
