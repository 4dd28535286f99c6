package cache

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// BenchmarkBuilderOneFlag: the next snapshot with one flag changed, and the
// loop's expiry questions on it, among n flags (a tenth with an expiry).
// It copies one shard: O(n/64).
func BenchmarkBuilderOneFlag(b *testing.B) {
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("flags=%d", n), func(b *testing.B) {
			bl := NewBuilder(Empty())
			for i := range n {
				e := Entry{State: Up, Weight: NoWeight}
				if i%10 == 0 {
					e = Entry{State: Drain, Weight: NoWeight, Expires: now.Add(time.Duration(i) * time.Second)}
				}
				bl.Set("squid"+strconv.Itoa(i)+".80", e)
			}
			s := bl.Snapshot(now)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				nb := NewBuilder(s)
				st := Drain
				if i%2 == 0 {
					st = Up
				}
				nb.Set("squid0.80", Entry{State: st, Weight: NoWeight, Expires: now.Add(time.Hour)})
				next := nb.Snapshot(now)
				_ = next.NextExpiry(now)
				for range next.ExpiredIn(now.Add(-time.Second), now) {
				}
				s = next
				i++
			}
		})
	}
}
