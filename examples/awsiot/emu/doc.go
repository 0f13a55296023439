// Package emu starts the embedded broker in AWS IoT Core emulation for the examples: a
// throwaway development PKI, one registered device certificate per thing, and a policy that
// lets each thing connect as itself and use its own $aws/things/<thing>/ topics (shadow, jobs,
// streams). It is a few calls of packages broker and pki, shown here so that the examples run
// with no setup.
package emu
