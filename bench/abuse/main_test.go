//go:build linux

package main

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/testenv"
)

// procNetTCP is a /proc/net/tcp with the daemon on port 0x1F41 (8001): its
// listening socket (left out), two connections, and a client socket whose
// remote port is 8001 (not the daemon's side).
const procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F41 00000000:0000 0A 00000000:00000010 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F41 0100007F:D431 01 00003000:00004000 01:00000014 00000000     0        0 1002 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F41 0100007F:D432 01 00000100:00000000 00:00000000 00000000     0        0 1003 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:D431 0100007F:1F41 01 00000000:00001000 00:00000000 00000000     0        0 1004 1 0000000000000000 20 4 30 10 -1
`

func TestTCPQueues(t *testing.T) {
	tx, rx, n, err := tcpQueues(procNetTCP, 8001)
	if err != nil || tx != 0x3100 || rx != 0x4000 || n != 2 {
		t.Errorf("tcpQueues = tx %#x, rx %#x, %d sockets, %v; want 0x3100, 0x4000, 2", tx, rx, n, err)
	}
	if tx, rx, n, err := tcpQueues(procNetTCP, 80); err != nil || tx+rx+n != 0 {
		t.Errorf("tcpQueues(port 80) = %d, %d, %d, %v; want nothing", tx, rx, n, err)
	}
	for _, bad := range []string{
		"header\n   0: 0100007F 0100007F:D431 01 00000000:00000000 x\n",
		"header\n   0: 0100007F:XYZ 0100007F:D431 01 00000000:00000000 x\n",
		"header\n   0: 0100007F:1F41 0100007F:D431 01 0000000000000000 x\n",
		"header\n   0: 0100007F:1F41 0100007F:D431 01 0000000G:00000000 x\n",
	} {
		if _, _, _, err := tcpQueues(bad, 8001); err == nil {
			t.Errorf("tcpQueues(%q) accepted", bad)
		}
	}
}

// TestDaemonQueues: this process's own connected socket is found in
// /proc/net/tcp by its local address.
func TestDaemonQueues(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The client sends 100 bytes nobody reads: the server side's receive
	// queue holds them once they arrived.
	if _, err := c.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		_, rx, n, err := daemonQueues(ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 && rx == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemonQueues: %d sockets, rx %d; want 1 socket holding 100 bytes", n, rx)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPipelined(t *testing.T) {
	b, n := pipelined(statusReq, 16<<10)
	if n != (16<<10)/len(statusReq) || len(b) != n*len(statusReq) || len(b) > 16<<10 || !strings.HasPrefix(string(b), statusReq+statusReq) {
		t.Errorf("pipelined(16 KiB) = %d bytes, %d requests", len(b), n)
	}
	if b, n := pipelined(statusReq, 1); n != 1 || string(b) != statusReq {
		t.Errorf("pipelined(1 byte) = %q, %d; want one request", b, n)
	}
}

func TestAnswerLen(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("OK - service fine!\n"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	n, err := answerLen(addr, statusReq)
	if err != nil {
		t.Fatal(err)
	}
	// The same answer, read whole by a connection that asks for a close.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET /status HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
	var all []byte
	r := bufio.NewReader(c)
	for {
		b, err := r.ReadByte()
		if err != nil {
			break
		}
		all = append(all, b)
	}
	if want := len(all) - len("Connection: close\r\n"); n != want {
		t.Errorf("answerLen = %d, want %d (answer %q)", n, want, all)
	}
}

// lineServer answers every connection that sends a line with "up ..." at
// once, and one that sends nothing with "up default" after wait, then
// closes; it counts the silent ones.
func lineServer(t *testing.T, wait time.Duration) (addr string, silent chan struct{}) {
	silent = make(chan struct{}, 1000)
	addr = testenv.ServeTCP(t, func(c net.Conn) {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(wait))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			c.Write([]byte("up default\n"))
			select {
			case silent <- struct{}{}:
			default:
			}
			return
		}
		c.Write([]byte("up " + line))
	})
	return addr, silent
}

func TestCheck(t *testing.T) {
	addr, _ := lineServer(t, time.Second)
	took, reply, err := check(addr)
	if err != nil || reply != "up x.80" || took <= 0 {
		t.Errorf("check = %v, %q, %v; want up x.80", took, reply, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close() // no reply
		}
	}()
	if _, _, err := check(ln.Addr().String()); err == nil {
		t.Error("check of a server that closes with no reply: no error")
	}
}

// TestSilentConns: the silent connections stay open in the number asked,
// are dialled again when the server closes them, and stop closes them.
func TestSilentConns(t *testing.T) {
	addr, silent := lineServer(t, 50*time.Millisecond)
	s := newSilent(addr, 5)
	for deadline := time.Now().Add(10 * time.Second); s.cycles.Load() < 10; {
		if time.Now().After(deadline) {
			t.Fatalf("%d silent connections answered and closed, want 10", s.cycles.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := len(silent); got < 10 {
		t.Errorf("server saw %d silent connections, want >= 10", got)
	}
	if o := s.open.Load(); o < 0 || o > 5 {
		t.Errorf("%d open, want 0..5", o)
	}
	s.stop()
	if o := s.open.Load(); o != 0 {
		t.Errorf("%d open after stop, want 0", o)
	}
	s.stop() // twice is fine
}

func TestValidWmem(t *testing.T) {
	for in, want := range map[string]bool{
		"4096 16384 16384": true, " 4096  16384 4194304 ": true, "1 1 1": true,
		"4096 16384": false, "4096 16384 8192": false, "0 1 2": false, "a b c": false, "": false, "1 2 3 4": false,
	} {
		if got := validWmem(in); got != want {
			t.Errorf("validWmem(%q) = %v, want %v", in, got, want)
		}
	}
}
