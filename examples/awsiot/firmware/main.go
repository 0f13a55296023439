package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/examples/awsiot/emu"
	"github.com/fennec-mqtt/fennec/pki"
)

// Update is the job document of a firmware update.
type Update struct {
	Operation string `json:"operation"`
	Version   string `json:"version"`
	StreamID  string `json:"streamId"`
	FileID    int    `json:"fileId"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	Signature string `json:"signature"`
}

func main() {
	endpoint := flag.String("endpoint", "", "AWS IoT device data endpoint")
	thing := flag.String("thing", "dev1", "thing name (and client ID)")
	cert := flag.String("cert", "", "device certificate")
	key := flag.String("key", "", "device private key")
	pubkey := flag.String("pubkey", "", "PEM public key (ECDSA P-256) that signs firmware images")
	out := flag.String("out", "firmware.bin", "where the verified image is installed")
	emulate := flag.Bool("emulate", false, "run against the embedded broker's AWS IoT emulation")
	tamper := flag.Bool("tamper", false, "with -emulate: serve an image with one byte changed (and the job's digest to match)")
	wait := flag.Duration("wait", time.Minute, "how long to wait for a job")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	o := options{cfg: awsiot.Config{Endpoint: *endpoint, ThingName: *thing, Cert: pki.FileSource(*cert), Key: pki.FileSource(*key)},
		out: *out, emulate: *emulate, tamper: *tamper, wait: *wait}
	if !*emulate {
		pemBytes, err := os.ReadFile(*pubkey)
		if err != nil {
			fmt.Fprintln(os.Stderr, "firmware: -pubkey:", err)
			os.Exit(2)
		}
		if o.trusted, err = parsePublicKey(pemBytes); err != nil {
			fmt.Fprintln(os.Stderr, "firmware:", err)
			os.Exit(2)
		}
	}
	status, err := run(ctx, os.Stdout, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "firmware:", err)
		os.Exit(1)
	}
	if status != awsiot.StatusSucceeded {
		os.Exit(3)
	}
}

type options struct {
	cfg     awsiot.Config
	trusted *ecdsa.PublicKey
	out     string
	emulate bool
	tamper  bool
	wait    time.Duration
}

// run handles one job and returns the status it reported.
func run(ctx context.Context, w io.Writer, o options) (string, error) {
	if o.emulate {
		dir, err := os.MkdirTemp("", "fennec-firmware-example-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(dir)
		if o.out == "" || o.out == "firmware.bin" {
			o.out = filepath.Join(dir, "firmware.bin")
		}
		stream, job, pub, err := operator(o.cfg.ThingName, o.tamper)
		if err != nil {
			return "", err
		}
		o.trusted = pub
		e, err := emu.Start(ctx, dir, []string{o.cfg.ThingName}, broker.AWS{Streams: []broker.Stream{stream}, Jobs: []broker.Job{job}})
		if err != nil {
			return "", err
		}
		defer e.Close()
		fmt.Fprintf(w, "emulation  AWS IoT Core emulation on %s: job %s queued for %s, image in stream %s\n", e.Endpoint, job.ID, o.cfg.ThingName, stream.ID)
		o.cfg = e.Config(o.cfg.ThingName)
	}
	c, err := awsiot.Connect(ctx, o.cfg)
	if err != nil {
		return "", err
	}
	defer c.Disconnect(context.Background())
	jobs := awsiot.NewJobs(c, o.cfg.ThingName)
	wake := make(chan struct{}, 1)
	if err := jobs.OnNext(ctx, func(*awsiot.JobExecution) {
		select {
		case wake <- struct{}{}:
		default:
		}
	}); err != nil {
		return "", err
	}
	deadline := time.After(o.wait)
	for {
		e, err := jobs.StartNext(ctx, map[string]string{"step": "download"})
		if err != nil {
			return "", err
		}
		if e == nil {
			fmt.Fprintf(w, "waiting    no pending job; waiting up to %s\n", o.wait)
			select {
			case <-wake:
				continue
			case <-deadline:
				return "", errors.New("no job arrived")
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		fmt.Fprintf(w, "job        %s started (IN_PROGRESS)\n", e.JobID)
		details, ferr := install(ctx, w, c, o, e)
		status := awsiot.StatusSucceeded
		if ferr != nil {
			status = awsiot.StatusFailed
			details = map[string]string{"reason": ferr.Error()}
		}
		st, err := jobs.Update(ctx, e.JobID, awsiot.JobUpdate{Status: status, Details: details, ExpectedVersion: e.VersionNumber})
		if err != nil {
			return "", err
		}
		fmt.Fprintf(w, "job        %s %s %v (version %d)\n", e.JobID, st.Status, details, st.VersionNumber)
		return status, nil
	}
}

// install downloads, verifies and installs the image the job names.
func install(ctx context.Context, w io.Writer, c *awsiot.Client, o options, e *awsiot.JobExecution) (map[string]string, error) {
	var u Update
	if err := json.Unmarshal(e.JobDocument, &u); err != nil || u.Operation != "firmware-update" {
		return nil, fmt.Errorf("not a firmware-update job document")
	}
	want, err := hex.DecodeString(u.SHA256)
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("job document: sha256 is not 64 hex digits")
	}
	sig, err := base64.StdEncoding.DecodeString(u.Signature)
	if err != nil {
		return nil, fmt.Errorf("job document: signature is not base64")
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.out), ".firmware-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name()) // gone after the rename, or when anything failed
	h := sha256.New()
	n, err := awsiot.NewFileStream(c, o.cfg.ThingName, u.StreamID).Download(ctx, u.FileID, io.MultiWriter(tmp, h),
		awsiot.DownloadOptions{BlockSize: 4096, MaxSize: 32 << 20})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	sum := h.Sum(nil)
	fmt.Fprintf(w, "download   %d bytes from stream %s, sha256 %x\n", n, u.StreamID, sum)
	switch {
	case n != u.Size:
		return nil, fmt.Errorf("size %d, the job says %d", n, u.Size)
	case hex.EncodeToString(sum) != hex.EncodeToString(want):
		return nil, fmt.Errorf("sha256 %x, the job says %s", sum, u.SHA256)
	case !ecdsa.VerifyASN1(o.trusted, sum, sig):
		return nil, fmt.Errorf("signature check failed: the image is not signed by the trusted key")
	}
	if err := os.Rename(tmp.Name(), o.out); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "install    signature verified; version %s installed as %s\n", u.Version, o.out)
	return map[string]string{"version": u.Version, "sha256": u.SHA256}, nil
}

// operator plays the operator of the emulation: an image, its signature, the stream that
// serves it and the job that names it.
func operator(thing string, tamper bool) (broker.Stream, broker.Job, *ecdsa.PublicKey, error) {
	signer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return broker.Stream{}, broker.Job{}, nil, err
	}
	image := make([]byte, 100*1024+123)
	rand.Read(image)
	sum := sha256.Sum256(image)
	sig, err := ecdsa.SignASN1(rand.Reader, signer, sum[:])
	if err != nil {
		return broker.Stream{}, broker.Job{}, nil, err
	}
	served := image
	if tamper {
		// someone who can change the stream and the job document, but does not hold the
		// signing key: the digest matches the image served, the signature does not
		served = append([]byte(nil), image...)
		served[len(served)/2] ^= 0x01
		sum = sha256.Sum256(served)
	}
	doc, _ := json.Marshal(Update{Operation: "firmware-update", Version: "1.1.0", StreamID: "fw-1-1-0", FileID: 0,
		Size: int64(len(served)), SHA256: hex.EncodeToString(sum[:]), Signature: base64.StdEncoding.EncodeToString(sig)})
	return broker.Stream{ID: "fw-1-1-0", Description: "firmware 1.1.0", Files: map[int][]byte{0: served}},
		broker.Job{ID: "fw-update-1-1-0", Document: doc, Things: []string{thing}}, &signer.PublicKey, nil
}

func parsePublicKey(b []byte) (*ecdsa.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("-pubkey: no PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("-pubkey: %w", err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, errors.New("-pubkey: want an ECDSA P-256 public key")
	}
	return pub, nil
}
