package cli

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// tlsFacts records what happened during the handshake that the connection state does not
// show: whether the server asked for a client certificate, which CAs it accepts, and whether
// we sent one. --debug prints them; the hints use them.
type tlsFacts struct {
	mu            sync.Mutex
	requested     bool
	acceptableCAs []string
	sent          bool
	insecure      bool
}

func (f *tlsFacts) snapshot() (requested, sent bool, cas []string) {
	if f == nil {
		return false, false, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requested, f.sent, append([]string(nil), f.acceptableCAs...)
}

// buildTLSConfig turns the TLS flags into a *tls.Config for a client connecting to host.
func buildTLSConfig(f *connFlags, host string, facts *tlsFacts) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         host,
		NextProtos:         f.alpn,
		ClientSessionCache: tls.NewLRUClientSessionCache(8),
	}
	if f.servername != "" {
		cfg.ServerName = f.servername
	}
	switch strings.ToLower(f.tlsVersion) {
	case "":
	case "tlsv1.3", "1.3", "tls1.3":
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	case "tlsv1.2", "1.2", "tls1.2":
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	case "tlsv1.1", "tlsv1", "tlsv1.0", "1.1", "1.0":
		return nil, usageErrorf("--tls-version %s: TLS below 1.2 is broken and refused; use tlsv1.2 or tlsv1.3", f.tlsVersion)
	default:
		return nil, usageErrorf("--tls-version %q: use tlsv1.3 or tlsv1.2", f.tlsVersion)
	}
	if f.cafile != "" || f.capath != "" {
		var pool *x509.CertPool
		if f.osCerts {
			sp, err := x509.SystemCertPool()
			if err != nil {
				return nil, fmt.Errorf("loading the system CA certificates: %w", err)
			}
			pool = sp
		} else {
			pool = x509.NewCertPool()
		}
		if f.cafile != "" {
			if err := addCAFile(pool, f.cafile); err != nil {
				return nil, err
			}
		}
		if f.capath != "" {
			entries, err := os.ReadDir(f.capath)
			if err != nil {
				return nil, &exitError{code: ExitError, err: fmt.Errorf("--capath: %w", err)}
			}
			n := 0
			for _, e := range entries {
				if e.IsDir() {
					continue
				}
				if addCAFile(pool, filepath.Join(f.capath, e.Name())) == nil {
					n++
				}
			}
			if n == 0 {
				return nil, &exitError{code: ExitError, err: fmt.Errorf("--capath %s: no PEM CA certificate in the directory", f.capath),
					hint: "step: TLS setup (before connecting)\ncause: none of the files in the directory holds a PEM certificate\nfix: put the CA certificate(s) there as PEM files, or use --cafile FILE"}
			}
		}
		cfg.RootCAs = pool
	}
	if f.cert != "" {
		pair, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, certLoadError(f.cert, f.key, err)
		}
		cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			facts.mu.Lock()
			facts.requested, facts.sent = true, true
			facts.acceptableCAs = caNames(cri.AcceptableCAs)
			facts.mu.Unlock()
			return &pair, nil
		}
	} else {
		cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			facts.mu.Lock()
			facts.requested = true
			facts.acceptableCAs = caNames(cri.AcceptableCAs)
			facts.mu.Unlock()
			return &tls.Certificate{}, nil // none configured: send an empty certificate message
		}
	}
	if f.insecure {
		facts.insecure = true
		cfg.InsecureSkipVerify = true
	}
	if f.keylog != "" {
		w, err := os.OpenFile(f.keylog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("--keylog: %w", err)
		}
		cfg.KeyLogWriter = w // closed at process exit
	}
	return cfg, nil
}

func addCAFile(pool *x509.CertPool, name string) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return &exitError{code: ExitError, err: fmt.Errorf("CA file: %w", err)}
	}
	if !pool.AppendCertsFromPEM(data) {
		hint := "step: TLS setup (before connecting)\ncause: the file holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")"
		if len(data) > 0 && data[0] == 0x30 {
			if c, err := x509.ParseCertificate(data); err == nil {
				pool.AddCert(c)
				return nil
			}
			hint += "; it starts like DER but does not parse as a certificate"
		}
		hint += "\nfix: `fennec cert inspect " + name + "` shows what the file holds; `fennec cert convert --to pem` converts DER"
		return &exitError{code: ExitError, err: fmt.Errorf("%s: no CA certificate found", name), hint: hint}
	}
	return nil
}

func certLoadError(cert, key string, err error) error {
	msg := err.Error()
	hint := "step: TLS setup (before connecting)\n"
	switch {
	case errors.Is(err, os.ErrNotExist):
		hint += "cause: the file does not exist\nfix: check the path given to --cert/--key"
	case strings.Contains(msg, "private key does not match public key"):
		hint += "cause: the key in " + key + " is not the key of the certificate in " + cert + "\nfix: give the key that was generated with this certificate (`fennec cert check` pairs them)"
	case strings.Contains(msg, "failed to find any PEM data in certificate"):
		hint += "cause: " + cert + " holds no PEM certificate (DER, a C array, or a key?)\nfix: `fennec cert inspect " + cert + "` tells what it holds; `fennec cert convert --to pem` converts it"
	case strings.Contains(msg, "failed to find any PEM data in key") || strings.Contains(msg, "failed to find \"PRIVATE KEY\""):
		hint += "cause: " + key + " holds no PEM private key\nfix: `fennec cert inspect " + key + "` tells what it holds"
	default:
		hint += "cause: the certificate or key could not be loaded\nfix: `fennec cert check " + cert + " " + key + "` explains what is wrong with them"
	}
	return &exitError{code: ExitError, err: fmt.Errorf("loading client certificate: %w", err), hint: hint}
}

func caNames(raw [][]byte) []string {
	var out []string
	for _, r := range raw {
		out = append(out, describeDN(r))
	}
	return out
}

// describeDN renders a DER-encoded distinguished name, as the server sends them in its
// certificate request.
func describeDN(der []byte) string {
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &rdn); err != nil || len(rest) > 0 {
		return fmt.Sprintf("(unparsable name, %d bytes)", len(der))
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdn)
	return n.String()
}
