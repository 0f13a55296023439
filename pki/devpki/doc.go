// Package devpki generates certificates: Issue and IssueFromCSR sign one (ECDSA P-256 by
// default, RSA 2048 or Ed25519), Generate makes a whole development PKI (a CA, a server
// certificate for localhost, 127.0.0.1 and ::1, and client certificates), WriteDir writes it
// with private keys at mode 0600 and LoadDir reads it back.
//
// It is for brokers on a developer's machine (fennec broker, fennec demo), the AWS emulation's
// Fleet Provisioning, and tests; never for production. Loading and checking certificates is
// package pki's job, which this package builds on.
package devpki
