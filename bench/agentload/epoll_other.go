//go:build !linux

package main

import (
	"errors"
	"time"
)

const epollSupported = false

func runEpoll(t *target, c, loops int, d, timeout time.Duration, expect []byte) result {
	return result{errs: 1, firstErr: errors.New("the epoll client needs Linux; use -client go")}
}
