// Package storetest checks that a session.Store behaves as the client relies on: for the
// stores of this module and for a store of your own. It is a test suite, not a store.
package storetest
