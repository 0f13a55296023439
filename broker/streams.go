package broker

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The MQTT-based file delivery of the AWS emulation: streams of files a device downloads in
// blocks over MQTT (describe and get, in the JSON format), as AWS IoT's OTA updates and jobs
// that carry firmware use them.
// Source: "Using AWS IoT MQTT-based file delivery in devices".
const awsDocStreams = "https://docs.aws.amazon.com/iot/latest/developerguide/mqtt-based-file-delivery-in-devices.html"

// Stream is a stream of the emulation: files (by file ID) a device downloads in blocks.
type Stream struct {
	ID          string
	Description string
	Files       map[int][]byte
}

// Limits of the file delivery (AWS's: blocks of 256 bytes to 128 KiB; the emulation answers at
// most StreamMaxBlocksPerRequest blocks per get request).
const (
	StreamMinBlock            = 256
	StreamMaxBlock            = 128 * 1024
	StreamMaxBlocksPerRequest = 64
	StreamMaxFile             = 64 << 20
)

var streamTopic = regexp.MustCompile(`^\$aws/things/([a-zA-Z0-9:_-]{1,128})/streams/([a-zA-Z0-9_-]{1,128})/(describe|get)/json$`)

type streams struct {
	b  *Broker
	mu sync.Mutex
	s  map[string]*streamState
}

type streamState struct {
	Stream
	version int
}

func newStreams(b *Broker) *streams { return &streams{b: b, s: map[string]*streamState{}} }

func (s *streams) start(srv *mqtt.Server) error {
	if err := srv.Subscribe("$aws/things/+/streams/+/+/json", 9200, s.handle); err != nil {
		return fmt.Errorf("broker: file delivery: %w", err)
	}
	return nil
}

// CreateStream adds (or replaces, with a new version) a stream of files for MQTT-based file
// delivery. It fails outside the AWS emulation.
func (b *Broker) CreateStream(st Stream) error {
	if b.streams == nil {
		return errNotAWS
	}
	return b.streams.create(st)
}

func (s *streams) create(st Stream) error {
	if !regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`).MatchString(st.ID) {
		return fmt.Errorf("broker: stream ID %q: 1 to 128 of a-z, A-Z, 0-9, '-' and '_'", st.ID)
	}
	if len(st.Files) == 0 {
		return fmt.Errorf("broker: stream %s has no file", st.ID)
	}
	files := map[int][]byte{}
	for id, f := range st.Files {
		if id < 0 || id > 255 || len(f) > StreamMaxFile {
			return fmt.Errorf("broker: stream %s: file %d: IDs are 0 to 255, sizes at most %d bytes", st.ID, id, StreamMaxFile)
		}
		files[id] = append([]byte(nil), f...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := 1
	if old := s.s[st.ID]; old != nil {
		v = old.version + 1
	}
	s.s[st.ID] = &streamState{Stream: Stream{ID: st.ID, Description: st.Description, Files: files}, version: v}
	return nil
}

type streamRequest struct {
	C string `json:"c"` // client token
	S *int   `json:"s"` // stream version
	F int    `json:"f"` // file ID
	L int    `json:"l"` // block size
	O int    `json:"o"` // block offset
	N *int   `json:"n"` // number of blocks
}

func (s *streams) handle(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	m := streamTopic.FindStringSubmatch(pk.TopicName)
	if m == nil {
		return // an answer topic
	}
	prefix := "$aws/things/" + m[1] + "/streams/" + m[2] + "/"
	for _, o := range s.serve(m[2], m[3], pk.Payload) {
		if err := s.b.srv.Publish(prefix+o.suffix, o.payload, false, 0); err != nil {
			s.b.log.Warn("file delivery answer not published", "topic", prefix+o.suffix, "error", err)
		}
	}
}

// serve answers one describe or get request. Blocks go out at QoS 0, as AWS sends them: a
// device asks again for what did not arrive.
func (s *streams) serve(id, op string, payload []byte) []shadowOut {
	var req streamRequest
	reject := func(code, msg string) []shadowOut {
		s.b.log.Info("file delivery request rejected", "stream", id, "op", op, "code", code, "message", msg, "aws_doc", awsDocStreams)
		v := map[string]any{"o": code, "m": msg}
		if req.C != "" {
			v["c"] = req.C
		}
		return []shadowOut{{"rejected/json", mustJSON(v)}}
	}
	if len(payload) > 4096 {
		return reject("InvalidRequest", "request too large")
	}
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &req); err != nil {
			return reject("InvalidRequest", "not JSON: "+err.Error())
		}
	}
	if len(req.C) > 64 {
		req.C = ""
		return reject("InvalidRequest", "client token longer than 64 characters")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.s[id]
	if st == nil {
		return reject("ResourceNotFound", "no stream "+id)
	}
	if req.S != nil && *req.S != st.version {
		return reject("VersionMismatch", fmt.Sprintf("the stream is at version %d", st.version))
	}
	tok := func(v map[string]any) map[string]any {
		if req.C != "" {
			v["c"] = req.C
		}
		return v
	}
	switch op {
	case "describe":
		var files []map[string]any
		for fid := 0; fid <= 255; fid++ {
			if f, ok := st.Files[fid]; ok {
				files = append(files, map[string]any{"f": fid, "z": len(f)})
			}
		}
		return []shadowOut{{"description/json", mustJSON(tok(map[string]any{"s": st.version, "d": st.Description, "r": files}))}}
	case "get":
		f, ok := st.Files[req.F]
		if !ok {
			return reject("ResourceNotFound", fmt.Sprintf("no file %d in stream %s", req.F, id))
		}
		if req.L < StreamMinBlock || req.L > StreamMaxBlock {
			return reject("BlockSizeOutOfBounds", fmt.Sprintf("block size %d: %d to %d bytes", req.L, StreamMinBlock, StreamMaxBlock))
		}
		n := 1
		if req.N != nil {
			n = *req.N
		}
		blocks := (len(f) + req.L - 1) / req.L
		if req.O < 0 || req.O >= blocks {
			return reject("OffsetOutOfBounds", fmt.Sprintf("block %d: the file has %d blocks of %d bytes", req.O, blocks, req.L))
		}
		if n < 1 || n > StreamMaxBlocksPerRequest {
			return reject("InvalidRequest", fmt.Sprintf("number of blocks %d: 1 to %d", n, StreamMaxBlocksPerRequest))
		}
		var outs []shadowOut
		for i := req.O; i < blocks && i < req.O+n; i++ {
			end := min((i+1)*req.L, len(f))
			outs = append(outs, shadowOut{"data/json", mustJSON(tok(map[string]any{"f": req.F, "l": end - i*req.L, "i": i, "p": base64.StdEncoding.EncodeToString(f[i*req.L : end])}))})
		}
		return outs
	}
	return nil
}
