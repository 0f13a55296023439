package devpki_test

import (
	"fmt"
	"log"
	"os"

	"github.com/fennec-mqtt/fennec/pki/devpki"
)

// A development PKI for a broker on this machine: a CA, a server certificate for localhost and
// the loopback addresses, and one client certificate per name, written with the keys at 0600.
func ExampleGenerate() {
	p, err := devpki.Generate(devpki.Options{Clients: []string{"sensor-1", "sensor-2"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("CA:", p.CA.Cert.IsCA)
	fmt.Println("server:", p.Server.Cert.DNSNames, len(p.Server.Cert.IPAddresses), "IPs")
	fmt.Println("clients:", p.ClientNames)
	dir, err := os.MkdirTemp("", "devpki")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	files, err := p.WriteDir(dir)
	if err != nil {
		log.Fatal(err)
	}
	st, err := os.Stat(files.ServerKey)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("server key mode: %o\n", st.Mode().Perm())
	// Output:
	// CA: true
	// server: [localhost] 2 IPs
	// clients: [sensor-1 sensor-2]
	// server key mode: 600
}
