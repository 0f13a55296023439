// Package shadowcmd is `fennec shadow`: get, update, delete and watch an AWS IoT Device Shadow.
package shadowcmd
