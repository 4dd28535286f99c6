//go:build linux

package httpd

import "sync/atomic"

// CodeCounts counts answers by HTTP status code. Inc is one atomic add: no
// lock, no allocation, so the /status path can count every answer; the
// metrics collector reads the counters at scrape time.
type CodeCounts struct {
	n [600]atomic.Uint64 // index: status code; 0 holds codes outside 100..599
}

// Inc counts one answer with code.
func (c *CodeCounts) Inc(code int) {
	if code < 100 || code >= len(c.n) {
		code = 0
	}
	c.n[code].Add(1)
}

// Each calls f for every code counted at least once, in increasing order
// (code 0 stands for codes outside 100..599).
func (c *CodeCounts) Each(f func(code int, n uint64)) {
	for i := range c.n {
		if v := c.n[i].Load(); v > 0 {
			f(i, v)
		}
	}
}
