package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// An update as a stream delivers it: the status id (the event id Kicau puts on every update) and the frame's
// data, from which the status's created_at is read the first time the status is seen.
type update struct {
	statusID []byte
	data     []byte
	wsFrame  bool // data is a whole WebSocket message (Mastodon's payload is a JSON string inside it)
}

// streamParser turns what one connection receives into updates and other events. Both implementations keep
// only the bytes of a frame still arriving between calls.
type streamParser interface {
	// feed consumes data, calling onUpdate for every update frame and onOther with the name of every other
	// event; it returns bytes to write back to the server (a WebSocket pong), if any.
	feed(data []byte, onUpdate func(update), onOther func(string)) ([]byte, error)
}

var errChunkSize = errors.New("bad chunk size line")

// sseParser reads an SSE stream sent with Transfer-Encoding: chunked: the chunks are joined, then cut into
// frames at blank lines. Comments (the ":thump" heartbeat) carry no event and are ignored.
type sseParser struct {
	chunked []byte // raw bytes not yet taken out of their chunk
	events  []byte // de-chunked bytes of a frame still arriving
	ended   bool   // the last (zero-length) chunk came
}

func (p *sseParser) feed(data []byte, onUpdate func(update), onOther func(string)) ([]byte, error) {
	p.chunked = append(p.chunked, data...)
	at := 0
	for !p.ended {
		lineEnd := bytes.Index(p.chunked[at:], []byte("\r\n"))
		if lineEnd < 0 {
			break
		}
		sizeText := p.chunked[at : at+lineEnd]
		if semi := bytes.IndexByte(sizeText, ';'); semi >= 0 {
			sizeText = sizeText[:semi]
		}
		size, err := strconv.ParseUint(string(bytes.TrimSpace(sizeText)), 16, 32)
		if err != nil {
			return nil, errChunkSize
		}
		start := at + lineEnd + 2
		if size == 0 {
			p.ended = true
			break
		}
		if len(p.chunked)-start < int(size)+2 {
			break
		}
		p.events = append(p.events, p.chunked[start:start+int(size)]...)
		at = start + int(size) + 2
	}
	if p.ended {
		at = len(p.chunked) // the trailer section after the last chunk carries nothing of the stream
	}
	p.chunked = append(p.chunked[:0], p.chunked[at:]...)

	start := 0
	for {
		end := bytes.Index(p.events[start:], []byte("\n\n"))
		if end < 0 {
			break
		}
		sseFrame(p.events[start:start+end], onUpdate, onOther)
		start += end + 2
	}
	p.events = append(p.events[:0], p.events[start:]...)
	return nil, nil
}

func sseFrame(frame []byte, onUpdate func(update), onOther func(string)) {
	var id, event, data []byte
	for len(frame) > 0 {
		line := frame
		if nl := bytes.IndexByte(frame, '\n'); nl >= 0 {
			line, frame = frame[:nl], frame[nl+1:]
		} else {
			frame = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case bytes.HasPrefix(line, []byte("id: ")):
			id = line[4:]
		case bytes.HasPrefix(line, []byte("event: ")):
			event = line[7:]
		case bytes.HasPrefix(line, []byte("data: ")):
			data = line[6:]
		}
	}
	switch {
	case event == nil:
		// A comment: the heartbeat.
	case string(event) == "update":
		onUpdate(update{statusID: id, data: data})
	default:
		onOther(string(event))
	}
}

const (
	wsText  = 0x1
	wsClose = 0x8
	wsPing  = 0x9
)

// wsParser reads a server's WebSocket frames (RFC 6455, unmasked) carrying Mastodon's JSON messages, and
// answers pings.
type wsParser struct {
	pending []byte
	closed  bool
}

var (
	updateMarker = []byte(`"event":"update"`)
	eventMarker  = []byte(`"event":"`)
	idMarker     = []byte(`"id":"`)
)

func (p *wsParser) feed(data []byte, onUpdate func(update), onOther func(string)) ([]byte, error) {
	p.pending = append(p.pending, data...)
	var reply []byte
	at := 0
	for len(p.pending)-at >= 2 {
		first, second := p.pending[at], p.pending[at+1]
		length, head := uint64(second&0x7F), 2
		if second&0x80 != 0 {
			return nil, errors.New("a server frame is masked")
		}
		switch length {
		case 126:
			if len(p.pending)-at < 4 {
				return reply, p.keep(at)
			}
			length, head = uint64(p.pending[at+2])<<8|uint64(p.pending[at+3]), 4
		case 127:
			if len(p.pending)-at < 10 {
				return reply, p.keep(at)
			}
			length = 0
			for _, b := range p.pending[at+2 : at+10] {
				length = length<<8 | uint64(b)
			}
			head = 10
		}
		if uint64(len(p.pending)-at-head) < length {
			break
		}
		payload := p.pending[at+head : at+head+int(length)]
		at += head + int(length)
		switch opcode := first & 0x0F; {
		case opcode == wsText && first&0x80 != 0:
			wsMessage(payload, onUpdate, onOther)
		case opcode == wsPing:
			reply = append(reply, pong(payload)...)
		case opcode == wsClose:
			p.closed = true
		default:
			onOther("unexpected frame") // fragments and binary messages: the gateway never sends them
		}
	}
	return reply, p.keep(at)
}

func (p *wsParser) keep(at int) error {
	p.pending = append(p.pending[:0], p.pending[at:]...)
	return nil
}

// Kept cheap, as a thousand streams receive every status: an update is recognised by its event marker and its
// id read from the end of the message (Kicau puts the event id last), so only the first copy of a status is
// decoded, for its created_at.
func wsMessage(message []byte, onUpdate func(update), onOther func(string)) {
	if !bytes.Contains(message, updateMarker) {
		name := "other"
		if at := bytes.Index(message, eventMarker); at >= 0 {
			rest := message[at+len(eventMarker):]
			if end := bytes.IndexByte(rest, '"'); end >= 0 {
				name = string(rest[:end])
			}
		}
		onOther(name)
		return
	}
	at := bytes.LastIndex(message, idMarker)
	if at < 0 {
		onUpdate(update{data: message, wsFrame: true})
		return
	}
	rest := message[at+len(idMarker):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		onUpdate(update{data: message, wsFrame: true})
		return
	}
	onUpdate(update{statusID: rest[:end], data: message, wsFrame: true})
}

// pong is the answer to a ping carrying payload, masked as every client frame must be.
func pong(payload []byte) []byte {
	mask := [4]byte{0x4b, 0x69, 0x63, 0x61}
	out := make([]byte, 0, 6+len(payload))
	out = append(out, 0x8A, 0x80|byte(len(payload)))
	out = append(out, mask[:]...)
	for i, b := range payload {
		out = append(out, b^mask[i%4])
	}
	return out
}

// createdAtMs reads the status's created_at (epoch milliseconds) from an update's data.
func createdAtMs(u update) (float64, error) {
	data := u.data
	if u.wsFrame {
		var message struct {
			Payload string `json:"payload"`
		}
		if err := json.Unmarshal(data, &message); err != nil {
			return 0, err
		}
		data = []byte(message.Payload)
	}
	var status struct {
		CreatedAt string `json:"created_at"`
	}
	if err := json.Unmarshal(data, &status); err != nil {
		return 0, err
	}
	at, err := time.Parse(time.RFC3339Nano, status.CreatedAt)
	if err != nil {
		return 0, err
	}
	return float64(at.UnixMicro()) / 1000.0, nil
}
