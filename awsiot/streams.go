package awsiot

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// FileStream downloads the files of a stream over MQTT, in blocks (AWS IoT MQTT-based file
// delivery, JSON format): how AWS IoT OTA updates and firmware jobs deliver an image to a
// device that has only its MQTT connection.
// Topics and messages: https://docs.aws.amazon.com/iot/latest/developerguide/mqtt-based-file-delivery-in-devices.html
type FileStream struct {
	c      MQTT
	prefix string // $aws/things/<thing>/streams/<id>

	mu      sync.Mutex
	subbed  bool
	waiting map[string]chan streamMsg
}

type streamMsg struct {
	kind    string // "data", "description", "rejected"
	payload []byte
}

// NewFileStream returns the stream streamID as thing downloads it.
func NewFileStream(c MQTT, thing, streamID string) *FileStream {
	return &FileStream{c: c, prefix: "$aws/things/" + thing + "/streams/" + streamID, waiting: map[string]chan streamMsg{}}
}

// Topic returns the stream's topic for op ("get/json", "data/json", ...).
func (s *FileStream) Topic(op string) string { return s.prefix + "/" + op }

// StreamDescription is a stream's version, description and files.
type StreamDescription struct {
	Version     int    `json:"s"`
	Description string `json:"d"`
	Files       []struct {
		ID   int   `json:"f"`
		Size int64 `json:"z"`
	} `json:"r"`
}

// StreamError is a rejected file delivery request: AWS's code (ResourceNotFound,
// InvalidRequest, VersionMismatch, BlockSizeOutOfBounds, OffsetOutOfBounds, ...) and message.
type StreamError struct {
	Code    string `json:"o"`
	Message string `json:"m"`
}

func (e *StreamError) Error() string {
	return "awsiot: file delivery rejected: " + e.Code + ": " + e.Message
}

// DownloadOptions tune Download; zero values take the defaults.
type DownloadOptions struct {
	BlockSize        int           // bytes per block, 256 to 131072 (default 4096)
	BlocksPerRequest int           // blocks asked for at once (default 8)
	MaxSize          int64         // largest file accepted (default 16 MiB)
	BlockTimeout     time.Duration // wait for a request's blocks before asking again (default 5 s)
	Retries          int           // requests asked again without progress before giving up (default 5)
	// Progress, when set, is called after each block written.
	Progress func(done, total int64)
}

// ErrStreamTooLarge is a file larger than DownloadOptions.MaxSize.
var ErrStreamTooLarge = errors.New("awsiot: file larger than the download allows")

// Describe returns the stream's version and files.
func (s *FileStream) Describe(ctx context.Context) (*StreamDescription, error) {
	ch, token, done, err := s.open(ctx, 2)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := s.send(ctx, "describe/json", map[string]any{"c": token}); err != nil {
		return nil, err
	}
	for {
		select {
		case m := <-ch:
			switch m.kind {
			case "description":
				var d StreamDescription
				if err := json.Unmarshal(m.payload, &d); err != nil {
					return nil, fmt.Errorf("awsiot: stream description: %w", err)
				}
				return &d, nil
			case "rejected":
				return nil, rejected(m.payload)
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("awsiot: stream describe: no answer on %s: %w", s.Topic("description/json"), ctx.Err())
		}
	}
}

// Download writes file fileID of the stream to w, block after block, and returns its size.
// Memory is one request's blocks (BlocksPerRequest × BlockSize), whatever the file's size; a
// block that does not arrive is asked for again; a block whose size or index is not the one
// asked for is ignored. It checks nothing about the content: verify the file's digest and
// signature, as the job that names it says, before using it.
func (s *FileStream) Download(ctx context.Context, fileID int, w io.Writer, o DownloadOptions) (int64, error) {
	if err := o.applyDefaults(); err != nil {
		return 0, err
	}
	d, size, err := s.fileSize(ctx, fileID, o.MaxSize)
	if err != nil {
		return 0, err
	}
	bs := int64(o.BlockSize)
	blocks := int((size + bs - 1) / bs)
	ch, token, done, err := s.open(ctx, o.BlocksPerRequest*2)
	if err != nil {
		return 0, err
	}
	defer done()
	var written int64
	next, misses := 0, 0
	for next < blocks {
		n := min(o.BlocksPerRequest, blocks-next)
		if err := s.send(ctx, "get/json", map[string]any{"c": token, "s": d.Version, "f": fileID, "l": o.BlockSize, "o": next, "n": n}); err != nil {
			return written, err
		}
		got, err := collectBlocks(ctx, ch, fileID, next, n, bs, size, o.BlockTimeout)
		if err != nil {
			return written, err
		}
		progress := false
		for ; next < blocks; next++ {
			data, ok := got[next]
			if !ok {
				break
			}
			if _, err := w.Write(data); err != nil {
				return written, err
			}
			written += int64(len(data))
			progress = true
			if o.Progress != nil {
				o.Progress(written, size)
			}
		}
		if progress {
			misses = 0
		} else if misses++; misses > o.Retries {
			return written, fmt.Errorf("awsiot: stream download: block %d did not arrive after %d requests", next, misses)
		}
	}
	return written, nil
}

// applyDefaults fills the options left zero and checks the block size.
func (o *DownloadOptions) applyDefaults() error {
	if o.BlockSize == 0 {
		o.BlockSize = 4096
	}
	if o.BlockSize < 256 || o.BlockSize > 128*1024 {
		return fmt.Errorf("awsiot: block size %d: 256 to 131072 bytes", o.BlockSize)
	}
	o.BlocksPerRequest = cmp.Or(o.BlocksPerRequest, 8)
	o.MaxSize = cmp.Or(o.MaxSize, 16<<20)
	o.BlockTimeout = cmp.Or(o.BlockTimeout, 5*time.Second)
	o.Retries = cmp.Or(o.Retries, 5)
	return nil
}

// fileSize describes the stream and returns the size of file fileID, refused above maxSize.
func (s *FileStream) fileSize(ctx context.Context, fileID int, maxSize int64) (*StreamDescription, int64, error) {
	d, err := s.Describe(ctx)
	if err != nil {
		return nil, 0, err
	}
	size := int64(-1)
	for _, f := range d.Files {
		if f.ID == fileID {
			size = f.Size
		}
	}
	if size < 0 {
		return nil, 0, &StreamError{Code: "ResourceNotFound", Message: fmt.Sprintf("the stream has no file %d", fileID)}
	}
	if size > maxSize {
		return nil, 0, fmt.Errorf("%w: %d bytes (at most %d)", ErrStreamTooLarge, size, maxSize)
	}
	return d, size, nil
}

// collectBlocks gathers the blocks next to next+n-1 of file fileID (of size bytes, in blocks
// of bs) that arrive on ch within timeout; a block of another file, index or size is ignored.
func collectBlocks(ctx context.Context, ch <-chan streamMsg, fileID, next, n int, bs, size int64, timeout time.Duration) (map[int][]byte, error) {
	got := make(map[int][]byte, n)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for len(got) < n {
		select {
		case m := <-ch:
			switch m.kind {
			case "rejected":
				return nil, rejected(m.payload)
			case "data":
				var b struct {
					F int    `json:"f"`
					L int    `json:"l"`
					I int    `json:"i"`
					P string `json:"p"`
				}
				if json.Unmarshal(m.payload, &b) != nil || b.F != fileID || b.I < next || b.I >= next+n {
					continue
				}
				want := min(bs, size-int64(b.I)*bs)
				data, err := base64.StdEncoding.DecodeString(b.P)
				if err != nil || int64(len(data)) != want || b.L != len(data) {
					continue
				}
				got[b.I] = data
			}
		case <-timer.C:
			return got, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return got, nil
}

func rejected(p []byte) error {
	e := &StreamError{}
	if json.Unmarshal(p, e) != nil {
		return fmt.Errorf("awsiot: file delivery rejected with an answer that is not JSON: %q", p)
	}
	return e
}

// open subscribes the answer topics once and registers a token whose answers go to a channel
// of capacity n (answers beyond it are dropped: the download asks again).
func (s *FileStream) open(ctx context.Context, n int) (chan streamMsg, string, func(), error) {
	s.mu.Lock()
	subbed := s.subbed
	s.mu.Unlock()
	if !subbed {
		for _, kind := range []string{"data", "description", "rejected"} {
			kind := kind
			h := func(m *fennec.Message) {
				var t struct {
					C string `json:"c"`
				}
				if json.Unmarshal(m.Payload, &t) != nil {
					return
				}
				s.mu.Lock()
				ch := s.waiting[t.C]
				s.mu.Unlock()
				if ch != nil {
					select {
					case ch <- streamMsg{kind, append([]byte(nil), m.Payload...)}:
					default:
					}
				}
			}
			if _, err := s.c.Subscribe(ctx, h, packet.Subscription{Filter: s.Topic(kind + "/json"), QoS: 1}); err != nil {
				return nil, "", nil, fmt.Errorf("awsiot: stream: %w", err)
			}
		}
		s.mu.Lock()
		s.subbed = true
		s.mu.Unlock()
	}
	var b [8]byte
	rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	ch := make(chan streamMsg, n)
	s.mu.Lock()
	s.waiting[token] = ch
	s.mu.Unlock()
	return ch, token, func() {
		s.mu.Lock()
		delete(s.waiting, token)
		s.mu.Unlock()
	}, nil
}

func (s *FileStream) send(ctx context.Context, op string, req map[string]any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if err := s.c.Publish(ctx, &fennec.Message{Topic: s.Topic(op), QoS: 1, Payload: b}); err != nil {
		return fmt.Errorf("awsiot: stream %s: %w", op, err)
	}
	return nil
}
