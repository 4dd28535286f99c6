// Package testenv holds settings shared by the test binaries. Only tests
// import it.
package testenv

import (
	"flag"
	"runtime"
	"strconv"
)

// WaitBoundParallel raises `go test`'s -parallel default (GOMAXPROCS) to n
// unless -parallel was given: call it from TestMain before m.Run. It is for
// packages whose parallel tests spend their time waiting (on child
// processes, timeouts, the kernel) rather than computing, so that on a
// 2-core machine more than two of them can wait at once.
func WaitBoundParallel(n int) {
	if !flag.Parsed() {
		flag.Parse()
	}
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if set || n <= runtime.GOMAXPROCS(0) {
		return
	}
	_ = flag.Set("test.parallel", strconv.Itoa(n))
}
