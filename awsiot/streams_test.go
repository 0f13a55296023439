package awsiot_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/awsiot"
	"github.com/fennec-mqtt/fennec/broker"
	"github.com/fennec-mqtt/fennec/packet"
)

// scriptedStream is a file delivery peer without a broker: Publish is a request, answered
// through the handlers Subscribe registered, as the script says.
type scriptedStream struct {
	mu       sync.Mutex
	handlers map[string]fennec.MessageHandler
	size     int64  // size the description claims
	file     []byte // what get serves
	drop     map[int]int
	badLen   map[int]bool
	gets     int
}

func (s *scriptedStream) Subscribe(_ context.Context, h fennec.MessageHandler, subs ...packet.Subscription) (*packet.Suback, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handlers == nil {
		s.handlers = map[string]fennec.MessageHandler{}
	}
	for _, sub := range subs {
		s.handlers[sub.Filter[strings.LastIndex(sub.Filter[:len(sub.Filter)-5], "/")+1:]] = h
	}
	return &packet.Suback{}, nil
}

func (s *scriptedStream) Publish(_ context.Context, m *fennec.Message) error {
	var req struct {
		C          string
		F, L, O, N int
	}
	json.Unmarshal(m.Payload, &req)
	s.mu.Lock()
	var outs []struct {
		to string
		v  any
	}
	add := func(to string, v any) {
		outs = append(outs, struct {
			to string
			v  any
		}{to, v})
	}
	switch {
	case strings.HasSuffix(m.Topic, "/describe/json"):
		add("description/json", map[string]any{"c": req.C, "s": 1, "r": []map[string]any{{"f": 0, "z": s.size}}})
	case strings.HasSuffix(m.Topic, "/get/json"):
		s.gets++
		for i := req.O; i < req.O+req.N && i*req.L < len(s.file); i++ {
			if s.drop[i] > 0 {
				s.drop[i]--
				continue
			}
			b := s.file[i*req.L : min((i+1)*req.L, len(s.file))]
			if s.badLen[i] {
				delete(s.badLen, i)
				b = b[:len(b)-1]
			}
			add("data/json", map[string]any{"c": req.C, "f": 0, "l": len(b), "i": i, "p": base64.StdEncoding.EncodeToString(b)})
		}
	}
	hs := s.handlers
	s.mu.Unlock()
	for _, o := range outs {
		p, _ := json.Marshal(o.v)
		if h := hs[o.to]; h != nil {
			h(&fennec.Message{Topic: o.to, Payload: p})
		}
	}
	return nil
}

// A download survives lost blocks (asked for again) and ignores a block of the wrong size; a
// description claiming more than MaxSize fails before anything is allocated or requested; blocks
// that never come end the download with an error after the retries.
func TestDownloadFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	file := make([]byte, 10*1024+7)
	rand.Read(file)
	opts := awsiot.DownloadOptions{BlockSize: 1024, BlocksPerRequest: 4, BlockTimeout: 50 * time.Millisecond}

	s := &scriptedStream{size: int64(len(file)), file: file, drop: map[int]int{2: 2, 9: 1}, badLen: map[int]bool{5: true}}
	var got bytes.Buffer
	n, err := awsiot.NewFileStream(s, "dev1", "st").Download(ctx, 0, &got, opts)
	if err != nil || n != int64(len(file)) || !bytes.Equal(got.Bytes(), file) {
		t.Fatalf("lossy download: %d bytes, %v; equal %v", n, err, bytes.Equal(got.Bytes(), file))
	}
	if s.gets < 5 {
		t.Fatalf("%d get requests: the lost blocks were not asked for again", s.gets)
	}

	huge := &scriptedStream{size: 1 << 40, file: file}
	if _, err := awsiot.NewFileStream(huge, "dev1", "st").Download(ctx, 0, &got, opts); !errors.Is(err, awsiot.ErrStreamTooLarge) || huge.gets != 0 {
		t.Fatalf("a 1 TiB description: %v after %d gets", err, huge.gets)
	}

	never := &scriptedStream{size: int64(len(file)), file: file, drop: map[int]int{0: 1 << 30}}
	got.Reset()
	if _, err := awsiot.NewFileStream(never, "dev1", "st").Download(ctx, 0, &got, opts); err == nil || !strings.Contains(err.Error(), "block 0 did not arrive") || got.Len() != 0 {
		t.Fatalf("a block that never comes: %v, %d bytes written", err, got.Len())
	}
}

// Against the emulation: describe, a download with the last block short, a missing stream and a
// missing file rejected with AWS's codes, and a block size the service refuses.
func TestFileStreamEmulated(t *testing.T) {
	file := make([]byte, 3*4096+100)
	rand.Read(file)
	pol, err := broker.ParsePolicy([]byte(shadowPolicy))
	if err != nil {
		t.Fatal(err)
	}
	b := startEmulatorWith(t, broker.AWS{Policy: pol, Streams: []broker.Stream{{ID: "fw", Description: "image", Files: map[int][]byte{0: file}}}})
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		c := connect(t, b, "dev1", v)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		fs := awsiot.NewFileStream(c, "dev1", "fw")
		d, err := fs.Describe(ctx)
		if err != nil || d.Version != 1 || d.Description != "image" || len(d.Files) != 1 || d.Files[0].Size != int64(len(file)) {
			t.Fatalf("%v describe: %+v %v", v, d, err)
		}
		var got bytes.Buffer
		var last int64
		n, err := fs.Download(ctx, 0, &got, awsiot.DownloadOptions{Progress: func(done, total int64) { last = done }})
		if err != nil || n != int64(len(file)) || !bytes.Equal(got.Bytes(), file) || last != n {
			t.Fatalf("%v download: %d %v", v, n, err)
		}
		var se *awsiot.StreamError
		if _, err := fs.Download(ctx, 3, &got, awsiot.DownloadOptions{}); !errors.As(err, &se) || se.Code != "ResourceNotFound" {
			t.Fatalf("%v missing file: %v", v, err)
		}
		if _, err := awsiot.NewFileStream(c, "dev1", "nope").Describe(ctx); !errors.As(err, &se) || se.Code != "ResourceNotFound" {
			t.Fatalf("%v missing stream: %v", v, err)
		}
		if _, err := fs.Download(ctx, 0, &got, awsiot.DownloadOptions{BlockSize: 100}); err == nil {
			t.Fatalf("%v block size 100 taken", v)
		}
		cancel()
		c.Disconnect(context.Background())
	}
}
