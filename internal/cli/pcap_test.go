package cli

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/fennec-mqtt/fennec/broker/brokertest"
	"github.com/fennec-mqtt/fennec/internal/cli/cmdutil"
)

// pcapSummary reads a capture back: packets (with pcapgo) and the key log lines of its
// Decryption Secrets Blocks.
func pcapSummary(t *testing.T, path string) (packets int, secrets []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err := r.ReadPacketData(); err != nil {
			break
		}
		packets++
	}
	for len(b) >= 12 {
		typ, n := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
		if n < 12 || int(n) > len(b) {
			t.Fatalf("bad block length %d", n)
		}
		if typ == 0x0A {
			l := binary.LittleEndian.Uint32(b[12:])
			secrets = append(secrets, string(b[16:16+l]))
		}
		b = b[n:]
	}
	return packets, secrets
}

// pub and doctor --pcap write the connection, with its TLS 1.3 secrets, to a 0600 file.
func TestPcapFlag(t *testing.T) {
	isolate(t)
	b := brokertest.Start(t, brokertest.Options{})
	host, port := cmdutil.SplitHostPort(b.TLSAddr)
	url := "mqtts://" + host + ":" + strconv.Itoa(port)
	tlsArgs := []string{"--servername", "localhost", "--cafile", b.CAFile, "--cert", b.ClientCert, "--key", b.ClientKey}
	dir := t.TempDir()
	for _, cmd := range [][]string{
		{"pub", "-L", url + "/pcap/t", "-m", "captured", "-q", "1"},
		{"doctor", url},
	} {
		p := filepath.Join(dir, cmd[0]+".pcapng")
		code, _, errout := run(t, append(append(cmd, tlsArgs...), "--pcap", p)...)
		if code != cmdutil.ExitOK {
			t.Fatalf("%s: exit %d\n%s", cmd[0], code, errout)
		}
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: capture file %v %v", cmd[0], st, err)
		}
		n, secrets := pcapSummary(t, p)
		if n < 10 || len(secrets) < 4 || !strings.Contains(errout, "capture written to "+p) {
			t.Fatalf("%s: %d packets, %d secrets; stderr %s", cmd[0], n, len(secrets), errout)
		}
		for _, s := range secrets {
			if !strings.Contains(s, "TRAFFIC_SECRET") {
				t.Fatalf("%s: unexpected key log line %q", cmd[0], s)
			}
		}
	}
	// The doctor's probes of a failure are in the capture too: TLS to the plain port.
	host, port = cmdutil.SplitHostPort(b.TCPAddr)
	p := filepath.Join(dir, "fail.pcapng")
	code, _, errout := run(t, append([]string{"doctor", "mqtts://" + host + ":" + strconv.Itoa(port), "--pcap", p}, tlsArgs...)...)
	if code == cmdutil.ExitOK {
		t.Fatalf("TLS to the plain port passed: %s", errout)
	}
	if n, _ := pcapSummary(t, p); n < 6 {
		t.Fatalf("failure capture: %d packets", n)
	}
}
