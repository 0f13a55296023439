// Package cli implements the fennec command: the command tree, help topics and exit. Each
// command lives in a package of its own (pubcmd, subcmd, democmd, certcmd, brokercmd,
// doctorcmd, benchcmd, shadowcmd, jobscmd, provisioncmd): an options struct plus a run function
// with its I/O injected, so tests drive it, over the shared cmdutil (connection flags, the
// client, output, errors and exit codes). Commands never import one another (archtest).
// These packages are the only ones that print or exit.
package cli
