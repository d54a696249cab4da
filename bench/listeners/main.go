// Command listeners holds many Kicau streams open (SSE or WebSocket) and times every status they deliver, for
// the delivery section of `make bench` (bench/delivery.py drives it).
//
// Why not Python: a thousand streams receive each status at once. On one asyncio loop their reads are handled
// one after another at ~30 µs each, so the last stream was timed ~30 ms after the first by the client's own
// queue, and the client took ~80% of a core at 25 posts/s on a 2-core machine it shares with the system it
// measures. Here the sockets are read through a level-triggered epoll a core (see poller): 12-31 µs of CPU a
// delivery.
//
// Latency of a delivery = the time its bytes were read (wall clock) - the status's created_at (ms precision, same
// machine). Control is by lines on stdin, each answered by one line on stdout:
//
//	count        -> the number of deliveries recorded since the last mark
//	mark         -> "ok"; forgets the deliveries, other events and parse errors recorded so far
//	dump <path>  -> "ok"; writes what was recorded since the last mark to path as JSON
//	quit (or EOF) closes every stream and exits.
//
// Once every stream has been tried, a first line says `open <answered 200> <failed> <first error or ->`.
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type delivery struct {
	statusID  int64
	latencyMs float64
}

type recorder struct {
	mu          sync.Mutex
	deliveries  []delivery
	created     map[int64]float64 // status id -> its created_at, epoch ms
	other       map[string]int
	parseErrors int
	closed      atomic.Int64
}

func newRecorder() *recorder {
	return &recorder{created: map[int64]float64{}, other: map[string]int{}}
}

func (r *recorder) update(u update, receivedMs float64) {
	statusID, err := strconv.ParseInt(string(u.statusID), 10, 64)
	if err != nil || statusID <= 0 {
		r.failedParse()
		return
	}
	r.mu.Lock()
	created, known := r.created[statusID]
	r.mu.Unlock()
	if !known {
		// Decoded outside the lock; two streams may both decode a status's first copies, which is harmless.
		if created, err = createdAtMs(u); err != nil {
			r.failedParse()
			return
		}
		r.mu.Lock()
		r.created[statusID] = created
		r.mu.Unlock()
	}
	r.mu.Lock()
	r.deliveries = append(r.deliveries, delivery{statusID, receivedMs - created})
	r.mu.Unlock()
}

func (r *recorder) failedParse() {
	r.mu.Lock()
	r.parseErrors++
	r.mu.Unlock()
}

func (r *recorder) otherEvent(name string) {
	r.mu.Lock()
	r.other[name]++
	r.mu.Unlock()
}

func (r *recorder) mark() {
	r.mu.Lock()
	r.deliveries = r.deliveries[:0]
	r.other = map[string]int{}
	r.parseErrors = 0
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.deliveries)
}

// What dump writes. A delivery is [status id, latency ms]: the id as a JSON integer (it exceeds a float64's
// exact range, so it is not written as one).
type record struct {
	Deliveries  [][2]json.Number `json:"deliveries"`
	OtherEvents map[string]int   `json:"other_events"`
	ParseErrors int              `json:"parse_errors"`
	Closed      int64            `json:"closed"`
	// This process's CPU (user + system) since it started: what the client itself costs the machine.
	CPUSeconds float64 `json:"cpu_seconds"`
}

func (r *recorder) dump(path string) error {
	r.mu.Lock()
	var usage syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &usage)
	cpu := time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
	out := record{OtherEvents: r.other, ParseErrors: r.parseErrors, Closed: r.closed.Load(), CPUSeconds: cpu}
	out.Deliveries = make([][2]json.Number, len(r.deliveries))
	for i, d := range r.deliveries {
		out.Deliveries[i] = [2]json.Number{json.Number(strconv.FormatInt(d.statusID, 10)),
			json.Number(strconv.FormatFloat(d.latencyMs, 'f', 3, 64))}
	}
	r.mu.Unlock()
	data, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

type stream struct {
	addr, host, token, transport string
	conn                         net.Conn
}

func (s *stream) request() []byte {
	if s.transport == "websocket" {
		key := make([]byte, 16)
		_, _ = rand.Read(key)
		return []byte("GET /api/v1/streaming?stream=user HTTP/1.1\r\nHost: " + s.host + "\r\nAuthorization: Bearer " +
			s.token + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " +
			base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\n\r\n")
	}
	return []byte("GET /api/v1/streaming/user HTTP/1.1\r\nHost: " + s.host + "\r\nAuthorization: Bearer " + s.token +
		"\r\nAccept: text/event-stream\r\n\r\n")
}

// open connects and reads the answer's head: nil once the stream is open (200, or 101 for WebSocket), with the
// bytes read after the head.
func (s *stream) open() ([]byte, error) {
	conn, err := net.DialTimeout("tcp", s.addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	s.conn = conn
	if _, err := conn.Write(s.request()); err != nil {
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var head []byte
	buf := make([]byte, 16384)
	for {
		n, err := conn.Read(buf)
		head = append(head, buf[:n]...)
		if end := bytes.Index(head, []byte("\r\n\r\n")); end >= 0 {
			fields := strings.SplitN(string(head[:end]), " ", 3)
			if len(fields) < 2 || (fields[1] != "200" && fields[1] != "101") {
				return nil, fmt.Errorf("the stream answered %q", strings.SplitN(string(head[:end]), "\r\n", 2)[0])
			}
			_ = conn.SetReadDeadline(time.Time{})
			return head[end+4:], nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// A stream once open: its socket, taken out of Go's poller, and its parser.
type reading struct {
	fd     int
	parser streamParser
}

// poller reads the streams of one OS thread through its own level-triggered epoll: one read(2) a delivery.
//
// Why not a goroutine a stream: Go's Read tries the socket again after every delivery before parking (an
// EAGAIN, a second syscall), and with a thousand streams those syscalls were 42% of this program's CPU and
// the netpoller's bookkeeping 15% more (pprof, 25 posts/s).
type poller struct {
	epfd    int
	rec     *recorder
	streams map[int]*reading
	mu      sync.Mutex // guards streams: added to while the loop runs
}

func newPoller(rec *recorder) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &poller{epfd: epfd, rec: rec, streams: map[int]*reading{}}, nil
}

// add takes over conn's socket (a duplicate of its descriptor; conn itself is closed) with the bytes already
// read after the answer's head.
func (p *poller) add(conn net.Conn, transport string, rest []byte) error {
	file, err := conn.(*net.TCPConn).File()
	_ = conn.Close()
	if err != nil {
		return err
	}
	fd, err := syscall.Dup(int(file.Fd()))
	_ = file.Close()
	if err != nil {
		return err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return err
	}
	r := &reading{fd: fd, parser: &sseParser{}}
	if transport == "websocket" {
		r.parser = &wsParser{}
	}
	p.mu.Lock()
	p.streams[fd] = r
	p.mu.Unlock()
	if len(rest) > 0 && !p.feed(r, rest, nowMs()) {
		return nil
	}
	return syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)})
}

func nowMs() float64 {
	return float64(time.Now().UnixMicro()) / 1000.0
}

// feed hands data to the stream's parser; false once the stream is closed (unparseable).
func (p *poller) feed(r *reading, data []byte, receivedMs float64) bool {
	reply, err := r.parser.feed(data, func(u update) { p.rec.update(u, receivedMs) }, p.rec.otherEvent)
	if err != nil {
		p.rec.otherEvent("unparseable stream")
		p.drop(r)
		return false
	}
	if len(reply) > 0 {
		_, _ = syscall.Write(r.fd, reply) // a pong of a few bytes: the socket's buffer has room for it
	}
	return true
}

func (p *poller) drop(r *reading) {
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, r.fd, nil)
	_ = syscall.Close(r.fd)
	p.mu.Lock()
	delete(p.streams, r.fd)
	p.mu.Unlock()
	p.rec.closed.Add(1)
}

func (p *poller) loop() {
	runtime.LockOSThread()
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 65536)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "epoll_wait:", err)
			os.Exit(1)
		}
		for _, event := range events[:n] {
			p.mu.Lock()
			r := p.streams[int(event.Fd)]
			p.mu.Unlock()
			if r == nil {
				continue
			}
			// One read: whatever it leaves, the (level-triggered) epoll reports again.
			got, err := syscall.Read(r.fd, buf)
			switch {
			case err == syscall.EAGAIN || err == syscall.EINTR:
			case got <= 0:
				p.drop(r)
			default:
				p.feed(r, buf[:got], nowMs())
			}
		}
	}
}

func (p *poller) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for fd := range p.streams {
		_ = syscall.Close(fd)
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "the gateway's host:port")
	transport := flag.String("transport", "sse", "sse or websocket")
	tokensFile := flag.String("tokens", "", "file of bearer tokens, one per line: one stream each")
	concurrency := flag.Int("concurrency", 50, "streams opening at once")
	flag.Parse()

	raw, err := os.ReadFile(*tokensFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	rec := newRecorder()
	pollers := make([]*poller, runtime.NumCPU())
	for i := range pollers {
		if pollers[i], err = newPoller(rec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		go pollers[i].loop()
	}
	host := strings.Split(*addr, ":")[0]
	var streams []*stream
	for _, token := range strings.Fields(string(raw)) {
		streams = append(streams, &stream{addr: *addr, host: host, token: token, transport: *transport})
	}

	var opened, failed atomic.Int64
	var firstError atomic.Value
	slots := make(chan struct{}, max(1, *concurrency))
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Add(1)
		slots <- struct{}{}
		go func(s *stream, p *poller) {
			defer wg.Done()
			rest, err := s.open()
			<-slots
			if err != nil {
				failed.Add(1)
				firstError.CompareAndSwap(nil, err.Error())
				if s.conn != nil {
					_ = s.conn.Close()
				}
				return
			}
			if err := p.add(s.conn, s.transport, rest); err != nil {
				failed.Add(1)
				firstError.CompareAndSwap(nil, err.Error())
				return
			}
			opened.Add(1)
		}(s, pollers[i%len(pollers)])
	}
	wg.Wait()
	reason := "-"
	if e, ok := firstError.Load().(string); ok {
		reason = strings.ReplaceAll(e, "\n", " ")
	}
	fmt.Printf("open %d %d %s\n", opened.Load(), failed.Load(), reason)

	control := bufio.NewScanner(os.Stdin)
	for control.Scan() {
		command, arg, _ := strings.Cut(strings.TrimSpace(control.Text()), " ")
		switch command {
		case "count":
			fmt.Println(rec.count())
		case "mark":
			rec.mark()
			fmt.Println("ok")
		case "dump":
			if err := rec.dump(arg); err != nil {
				fmt.Println("error", strings.ReplaceAll(err.Error(), "\n", " "))
			} else {
				fmt.Println("ok")
			}
		case "quit":
			closeAll(pollers)
			return
		default:
			fmt.Println("error unknown command", command)
		}
	}
	closeAll(pollers)
}

func closeAll(pollers []*poller) {
	for _, p := range pollers {
		p.closeAll()
	}
}
