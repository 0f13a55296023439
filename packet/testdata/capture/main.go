// Command capture is a TCP proxy that records every MQTT packet passing between a client and a
// broker as one line of hex. It frames packets by their fixed header only (type byte and remaining
// length) and never decodes or re-encodes them, so the recorded bytes are exactly what the peers
// sent. It lives under testdata so that it is not part of the module's packages.
//
//	go run ./packet/testdata/capture -listen 127.0.0.1:18830 -broker 127.0.0.1:18831 -label pub-qos1 -out vectors.txt
//
// Each line is "<label> <c2s|s2c> <hex>".
package main

import (
	"bufio"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18830", "address to accept the client on")
	broker := flag.String("broker", "127.0.0.1:18831", "broker address")
	label := flag.String("label", "capture", "label written at the start of each line")
	out := flag.String("out", "-", "file to append to (- for stdout)")
	flag.Parse()

	w := io.Writer(os.Stdout)
	if *out != "-" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		w = f
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		b, err := net.Dial("tcp", *broker)
		if err != nil {
			log.Fatal(err)
		}
		rec := func(dir string, pkt []byte) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(w, "%s %s %s\n", *label, dir, hex.EncodeToString(pkt))
		}
		go pipe(c, b, "c2s", rec)
		go pipe(b, c, "s2c", rec)
	}
}

// pipe copies packets from src to dst, recording each one.
func pipe(src, dst net.Conn, dir string, rec func(string, []byte)) {
	defer dst.Close()
	defer src.Close()
	r := bufio.NewReader(src)
	for {
		pkt, err := readFrame(r)
		if err != nil {
			return
		}
		rec(dir, pkt)
		if _, err := dst.Write(pkt); err != nil {
			return
		}
	}
}

func readFrame(r *bufio.Reader) ([]byte, error) {
	h, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	pkt := []byte{h}
	n, mult := 0, 1
	for i := 0; ; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		pkt = append(pkt, c)
		n += int(c&0x7f) * mult
		if c&0x80 == 0 {
			break
		}
		if i == 3 {
			return nil, fmt.Errorf("bad remaining length")
		}
		mult <<= 7
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return append(pkt, body...), nil
}
