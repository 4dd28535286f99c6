package main

import (
	"io"
	"sync"
	"sync/atomic"
)

// logBuf passes log lines to a writer on a goroutine of its own through a
// bounded queue: Write never blocks, and when the queue is full the oldest
// line is dropped and counted. (zerolog's diode did this with a ring and a
// sync.Cond whose Broadcast a line could slip past while the goroutine was
// about to wait: that line then stayed queued until the next one was
// logged, on a quiet daemon perhaps hours later: TestLoggerLineNotHeldBack,
// 200,000 lines one at a time, found one held back in 2 runs of 3 with the
// diode's waiter; its poller instead wakes up on a timer, which an idle
// daemon should not.)
type logBuf struct {
	out     io.Writer
	lines   chan *[]byte
	dropped atomic.Int64
	quit    chan struct{}
	done    chan struct{}
	stop    sync.Once
	// alert is called on the goroutine, the only one that writes to out,
	// with how many lines were dropped since the last call.
	alert func(dropped int)
	// lost, called there too once out takes a line again, says how many
	// lines out refused (a full disk under --log-file) and the last
	// error; failed and failErr, the goroutine's own, count them.
	lost    func(n int, err error)
	failed  int
	failErr error
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func newLogBuf(out io.Writer, size int, alert func(dropped int), lost func(n int, err error)) *logBuf {
	b := &logBuf{out: out, lines: make(chan *[]byte, size), quit: make(chan struct{}), done: make(chan struct{}), alert: alert, lost: lost}
	go b.run()
	return b
}

// Write queues a copy of p (zerolog reuses p once Write returns).
func (b *logBuf) Write(p []byte) (int, error) {
	line := lineBufs.Get().(*[]byte)
	*line = append((*line)[:0], p...)
	for {
		select {
		case b.lines <- line:
			return len(p), nil
		default:
		}
		// Full: make room by dropping the oldest line (unless the
		// goroutine just took it).
		select {
		case old := <-b.lines:
			b.dropped.Add(1)
			putLine(old)
		default:
		}
	}
}

func putLine(line *[]byte) {
	if cap(*line) <= 64<<10 { // a pool holds buffers of about one size
		lineBufs.Put(line)
	}
}

func (b *logBuf) run() {
	defer close(b.done)
	for {
		select {
		case line := <-b.lines:
			b.write(line)
		case <-b.quit:
			// Flush what is queued, not what is logged from now on.
			for range len(b.lines) {
				select {
				case line := <-b.lines:
					b.write(line)
				default:
					return
				}
			}
			return
		}
	}
}

func (b *logBuf) write(line *[]byte) {
	_, err := b.out.Write(*line)
	putLine(line)
	if err != nil {
		b.failed, b.failErr = b.failed+1, err
		return
	}
	if b.failed > 0 && b.lost != nil {
		b.lost(b.failed, b.failErr)
		b.failed, b.failErr = 0, nil
	}
	if n := b.dropped.Swap(0); n > 0 && b.alert != nil {
		b.alert(int(n))
	}
}

// Close writes the lines queued, then stops the goroutine; lines logged
// afterwards are queued and never written. It returns when the queued lines
// are written, which is never while the writer does not take them.
func (b *logBuf) Close() {
	b.stop.Do(func() { close(b.quit) })
	<-b.done
}
