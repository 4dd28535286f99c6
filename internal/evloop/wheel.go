//go:build linux

package evloop

import "time"

// wheelSlots is the number of slots of the timer wheel; with the default
// 10 ms tick it spans 41 s, and a later deadline waits for its round.
const wheelSlots = 1 << 12

// wheel is a hashed timer wheel of connections: setting, moving and
// removing a deadline is O(1), and a tick looks only at the connections of
// its slot, so deadlines cost nothing per request however many
// connections a loop holds.
type wheel[S any] struct {
	tick  int64
	cur   int64 // the last tick number expired
	count int
	slots [wheelSlots]*Conn[S]
}

func (w *wheel[S]) init(tick time.Duration) {
	w.tick = int64(tick)
	w.cur = monoNow() / w.tick
}

// set (re)schedules c at at (monoNow; 0: not at all).
func (w *wheel[S]) set(c *Conn[S], at int64) {
	if c.slot >= 0 {
		if c.at == at {
			return
		}
		w.remove(c)
	}
	if at == 0 {
		return
	}
	n := at / w.tick
	if at%w.tick != 0 {
		n++ // never early
	}
	if n <= w.cur {
		n = w.cur + 1
	}
	i := int32(n & (wheelSlots - 1))
	c.at, c.slot = at, i
	c.prev, c.next = nil, w.slots[i]
	if c.next != nil {
		c.next.prev = c
	}
	w.slots[i] = c
	w.count++
}

func (w *wheel[S]) remove(c *Conn[S]) {
	if c.slot < 0 {
		return
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		w.slots[c.slot] = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next, c.slot = nil, nil, -1
	w.count--
}

// untilNext is how long from now (monoNow) until the first slot after the
// last one expired that holds a connection comes due (0 if that is past),
// looking at most untilNextScan slots ahead: the loop calls it each time it
// is about to block, once per request at low concurrency, so the scan is
// bounded, and a loop whose connections are all due later wakes once per
// untilNextScan ticks. Waiting that long misses no deadline: a connection
// due in this turn of the wheel is in its own slot, and one due in a later
// turn only makes the wait shorter than it could be.
func (w *wheel[S]) untilNext(now int64) int64 {
	for d := int64(1); d <= untilNextScan; d++ {
		if w.slots[(w.cur+d)&(wheelSlots-1)] != nil {
			return max(0, (w.cur+d)*w.tick-now)
		}
	}
	return max(0, (w.cur+untilNextScan)*w.tick-now)
}

// untilNextScan is how many slots untilNext looks at: 1.28 s at the default
// 10 ms tick.
const untilNextScan = 128

// expire calls f for every connection whose time has come by now, and
// removes it from the wheel first (f may set it again).
func (w *wheel[S]) expire(now int64, f func(*Conn[S])) {
	target := now / w.tick
	if target-w.cur > wheelSlots {
		w.cur = target - wheelSlots // one full turn sees every slot
	}
	for w.cur < target {
		w.cur++
		if w.count == 0 {
			w.cur = target
			return
		}
		i := w.cur & (wheelSlots - 1)
		for c := w.slots[i]; c != nil; {
			next := c.next
			if c.at <= now {
				w.remove(c)
				f(c)
			}
			c = next
		}
	}
}
