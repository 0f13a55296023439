package pki_test

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/fennec-mqtt/fennec/internal/tlstest"
	"github.com/fennec-mqtt/fennec/pki"
)

// The key log file was opened once per path and kept open in a global map for the life of the
// process. Now no descriptor stays open once the handshake has written its secrets.
func TestKeyLogFileNotHeldOpen(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts descriptors in /proc/self/fd")
	}
	f := tlstest.Get(t)
	s := tlstest.StartServer(t, tlstest.ServerConfig(t, f.Server, nil, 0, 0))
	path := filepath.Join(t.TempDir(), "keys.log")
	cfg, err := pki.ClientConfig(pki.ClientOptions{CAs: []pki.Source{pki.BytesSource(f.CA.CertPEM, "ca")}, ServerName: "localhost", KeyLogFile: path})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := tlstest.DialAndRead(t, s.Addr, cfg, false); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil || bytes.Count(data, []byte("CLIENT_TRAFFIC_SECRET_0 ")) != 3 {
		t.Fatalf("key log: %v\n%s", err, data)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		if target, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); target == path {
			t.Fatalf("descriptor %s still holds %s", fd.Name(), path)
		}
	}
}

// WriteFile replaces a file whole, with exactly the mode asked, and leaves no temporary file.
func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteFile(p, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	b, _ := os.ReadFile(p)
	entries, _ := os.ReadDir(dir)
	if st.Mode().Perm() != 0o600 || string(b) != "new" || len(entries) != 1 {
		t.Fatalf("mode %v, %q, %d entries", st.Mode(), b, len(entries))
	}
}
