//go:build !linux

package bench

import "time"

type cpuUsage struct{ user, system time.Duration }

func (a cpuUsage) sub(b cpuUsage) cpuUsage { return cpuUsage{a.user - b.user, a.system - b.system} }

func cpuTime() cpuUsage             { return cpuUsage{} }
func rss() (now, peak uint64)       { return 0, 0 }
func raiseFileLimit(need int) error { return nil }
