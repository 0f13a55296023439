package bench

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type cpuUsage struct{ user, system time.Duration }

func (a cpuUsage) sub(b cpuUsage) cpuUsage { return cpuUsage{a.user - b.user, a.system - b.system} }

func cpuTime() cpuUsage {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return cpuUsage{}
	}
	return cpuUsage{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())}
}

// rss reads the resident set size and its high-water mark from /proc/self/status.
func rss() (now, peak uint64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		if k == "VmRSS" {
			now = n << 10
		} else {
			peak = n << 10
		}
	}
	return now, peak
}

// FileLimitError says that the process may not open as many files as the run needs.
type FileLimitError struct {
	Need, Have uint64
}

func (e *FileLimitError) Error() string {
	return fmt.Sprintf("bench: the run needs about %d file descriptors and this process may open %d (its hard limit): raise it with `ulimit -n %d` (as root, or in /etc/security/limits.conf) and run again", e.Need, e.Have, e.Need)
}

// raiseFileLimit raises the soft limit on open files to what need asks, up to the hard limit.
func raiseFileLimit(need int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil // unknown: let the connects say
	}
	n := uint64(need)
	if lim.Cur >= n {
		return nil
	}
	if lim.Max < n {
		return &FileLimitError{Need: n, Have: lim.Max}
	}
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("bench: raising the open-file limit to %d: %w", n, err)
	}
	return nil
}
