package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

func chunk(body string) string {
	return fmt.Sprintf("%x\r\n%s\r\n", len(body), body)
}

type seen struct {
	updates []string // "id|data"
	others  []string
}

func (s *seen) onUpdate(u update) {
	s.updates = append(s.updates, string(u.statusID)+"|"+string(u.data))
}
func (s *seen) onOther(name string) { s.others = append(s.others, name) }

// The gateway's SSE stream, as it writes it: a chunk per frame, heartbeats as comment chunks. Fed in pieces cut
// at every position, it must give the same events as fed whole.
func TestSSEFramesAcrossEveryCut(t *testing.T) {
	stream := chunk(":thump\n") +
		chunk("id: 7301\nevent: update\ndata: {\"id\":\"7301\",\"created_at\":\"2026-12-01T16:00:00.250Z\"}\n\n") +
		chunk("event: delete\ndata: 99\n\n") +
		chunk("id: 7302\nevent: update\ndata: {\"id\":\"7302\"}\n\nid: 7303\nevent: update\ndata: {}\n\n") +
		"0\r\n\r\n"
	want := []string{"7301|{\"id\":\"7301\",\"created_at\":\"2026-12-01T16:00:00.250Z\"}", "7302|{\"id\":\"7302\"}",
		"7303|{}"}
	for cut := 0; cut <= len(stream); cut++ {
		for _, step := range []int{1, 3, len(stream)} {
			var got seen
			p := &sseParser{}
			pieces := []string{stream[:cut]}
			for rest := stream[cut:]; len(rest) > 0; {
				n := min(step, len(rest))
				pieces, rest = append(pieces, rest[:n]), rest[n:]
			}
			for _, piece := range pieces {
				if _, err := p.feed([]byte(piece), got.onUpdate, got.onOther); err != nil {
					t.Fatalf("cut %d step %d: %v", cut, step, err)
				}
			}
			if strings.Join(got.updates, ",") != strings.Join(want, ",") || strings.Join(got.others, ",") != "delete" {
				t.Fatalf("cut %d step %d: updates %q, others %q", cut, step, got.updates, got.others)
			}
			if !p.ended || len(p.events) != 0 || len(p.chunked) != 0 {
				t.Fatalf("cut %d step %d: left %q / %q, ended %v", cut, step, p.events, p.chunked, p.ended)
			}
		}
	}
}

func TestSSEBadChunkSizeIsAnError(t *testing.T) {
	var got seen
	if _, err := (&sseParser{}).feed([]byte("zz\r\nhello\r\n"), got.onUpdate, got.onOther); err == nil {
		t.Fatal("a chunk size that is not hex was accepted")
	}
}

func serverFrame(opcode byte, payload []byte) []byte {
	out := []byte{0x80 | opcode}
	switch n := len(payload); {
	case n < 126:
		out = append(out, byte(n))
	case n < 65536:
		out = append(out, 126, byte(n>>8), byte(n))
	default:
		out = append(out, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, payload...)
}

func mastodonMessage(event, payload, id string) []byte {
	message, _ := json.Marshal(map[string]any{"stream": []string{"user"}, "event": event, "payload": payload})
	// Kicau's frame ends with the event id, which the parser reads from the end.
	return append(message[:len(message)-1], []byte(fmt.Sprintf(`,"id":%q}`, id))...)
}

func TestWebSocketMessagesOfEveryLengthKindAndPings(t *testing.T) {
	long := strings.Repeat("x", 70000) // 8-byte length
	mid := strings.Repeat("y", 300)    // 2-byte length
	var stream []byte
	stream = append(stream, serverFrame(wsText, mastodonMessage("update", `{"id":"11","text":"`+mid+`"}`, "11"))...)
	stream = append(stream, serverFrame(wsPing, []byte("are you there"))...)
	stream = append(stream, serverFrame(wsText, mastodonMessage("update", `{"id":"12","text":"`+long+`"}`, "12"))...)
	stream = append(stream, serverFrame(wsText, mastodonMessage("delete", "11", ""))...)
	stream = append(stream, serverFrame(wsText, []byte(`{"event":"update","payload":"{}"}`))...)
	stream = append(stream, serverFrame(wsClose, nil)...)
	for _, step := range []int{1, 7, 1000, len(stream)} {
		var got seen
		var replies []byte
		p := &wsParser{}
		for rest := stream; len(rest) > 0; {
			n := min(step, len(rest))
			reply, err := p.feed(rest[:n], got.onUpdate, got.onOther)
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			replies, rest = append(replies, reply...), rest[n:]
		}
		if len(got.updates) != 3 || !strings.HasPrefix(got.updates[0], "11|") ||
			!strings.HasPrefix(got.updates[1], "12|") || !strings.HasPrefix(got.updates[2], "|") {
			t.Fatalf("step %d: updates %.80q", step, got.updates)
		}
		if strings.Join(got.others, ",") != "delete" || !p.closed || len(p.pending) != 0 {
			t.Fatalf("step %d: others %q, closed %v, left %d bytes", step, got.others, p.closed, len(p.pending))
		}
		// The pong: FIN + opcode 0xA, masked, the ping's payload under the mask.
		if len(replies) != 6+13 || replies[0] != 0x8A || replies[1] != 0x80|13 {
			t.Fatalf("step %d: pong % x", step, replies)
		}
		unmasked := make([]byte, 13)
		for i := range unmasked {
			unmasked[i] = replies[6+i] ^ replies[2+i%4]
		}
		if !bytes.Equal(unmasked, []byte("are you there")) {
			t.Fatalf("step %d: pong payload %q", step, unmasked)
		}
	}
}

func TestMaskedServerFrameIsAnError(t *testing.T) {
	var got seen
	if _, err := (&wsParser{}).feed([]byte{0x81, 0x80 | 1, 1, 2, 3, 4, 'a'}, got.onUpdate, got.onOther); err == nil {
		t.Fatal("a masked server frame was accepted")
	}
}

func TestCreatedAtFromBothTransports(t *testing.T) {
	status := `{"id":"5","created_at":"2026-12-01T16:00:00.250Z"}`
	want := 1796140800250.0
	for _, u := range []update{
		{statusID: []byte("5"), data: []byte(status)},
		{statusID: []byte("5"), data: mastodonMessage("update", status, "5"), wsFrame: true},
	} {
		got, err := createdAtMs(u)
		if err != nil || got != want {
			t.Fatalf("%s: %v %v, want %v", u.data, got, err, want)
		}
	}
	if _, err := createdAtMs(update{data: []byte(`{"created_at":"yesterday"}`)}); err == nil {
		t.Fatal("a created_at that is no time was accepted")
	}
}

func TestRecorderTimesEachDeliveryFromItsStatusCreatedAt(t *testing.T) {
	r := newRecorder()
	status := []byte(`{"created_at":"2026-12-01T16:00:00.250Z"}`)
	r.update(update{statusID: []byte("9007199254740993"), data: status}, 1796140800250.0+12.5)
	// A later copy is not decoded again: its data could be anything.
	r.update(update{statusID: []byte("9007199254740993"), data: []byte("not json")}, 1796140800250.0+40)
	r.update(update{statusID: []byte("abc"), data: status}, 0)
	r.otherEvent("delete")
	if r.count() != 2 || r.parseErrors != 1 || r.other["delete"] != 1 {
		t.Fatalf("count %d, parse errors %d, others %v", r.count(), r.parseErrors, r.other)
	}
	path := t.TempDir() + "/dump.json"
	if err := r.dump(path); err != nil {
		t.Fatal(err)
	}
	written, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"deliveries":[[9007199254740993,12.500],[9007199254740993,40.000]],"other_events":{"delete":1},` +
		`"parse_errors":1,"closed":0,"cpu_seconds":`
	if !strings.HasPrefix(string(written), want) {
		t.Fatalf("dumped %s", written)
	}
	r.mark()
	if r.count() != 0 || r.parseErrors != 0 || len(r.other) != 0 {
		t.Fatalf("mark kept %d deliveries", r.count())
	}
}
