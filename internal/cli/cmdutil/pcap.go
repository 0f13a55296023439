package cmdutil

import (
	"fmt"
	"os"

	"github.com/fennec-mqtt/fennec/capture"
)

// pcapFile is --pcap FILE: a capture of every connection the command makes.
type pcapFile struct {
	path string
	f    *os.File
	Rec  *capture.Recorder
}

// openPcap creates (or truncates) the capture file, mode 0600: it will hold TLS secrets.
func openPcap(path string) (*pcapFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, &Failure{Code: ExitError, Err: fmt.Errorf("--pcap: %w", err)}
	}
	rec, err := capture.New(f)
	if err != nil {
		f.Close()
		return nil, &Failure{Code: ExitError, Err: fmt.Errorf("--pcap %s: %w", path, err)}
	}
	return &pcapFile{path: path, f: f, Rec: rec}, nil
}

// Finish writes what is held, closes the file and says what it holds.
func (p *pcapFile) Finish(streams IO, quiet bool) {
	err := p.Rec.Close()
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(streams.Err, "fennec: --pcap %s: %v\n", p.path, err)
		return
	}
	if quiet {
		return
	}
	st := p.Rec.Stats()
	secret := ""
	if st.Secrets > 0 {
		secret = fmt.Sprintf(", %d TLS secret(s): anyone with the file can read the traffic", st.Secrets)
	}
	fmt.Fprintf(streams.Err, "fennec: capture written to %s: %d connection(s), %d packet(s)%s\n", p.path, st.Connections, st.Packets, secret)
}
