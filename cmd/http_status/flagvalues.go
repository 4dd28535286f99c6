//go:build linux

package main

import (
	"errors"
	"flag"
	"strconv"
	"time"
)

// decimal is an int flag read in base 10 only. The flag package's IntVar
// reads Go literals, so "-p 010" was port 8 and "-p 0x50" port 80: the
// control command wrote the flag squid.8 for "activate squid -p 010", and
// "inactivate squid -p 010" removed squid.8 while squid.10 stayed in
// rotation. A leading zero is refused rather than read as decimal,
// because /status?PORT=010 asks for NAME.010, not NAME.10.
type decimal int

func (d *decimal) String() string { return strconv.Itoa(int(*d)) }

func (d *decimal) Set(s string) error {
	n, err := parseDecimal(s)
	if err != nil {
		return err
	}
	*d = decimal(n)
	return nil
}

var errNotDecimal = errors.New("want a decimal number without leading zeros (8001, not 08001 or 0x1f41)")

// parseDecimal reads an optionally negative decimal number without leading
// zeros.
func parseDecimal(s string) (int, error) {
	digits := s
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return 0, errNotDecimal
	}
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return 0, errNotDecimal
		}
	}
	n, err := strconv.ParseInt(s, 10, 0)
	if err != nil {
		return 0, errNotDecimal
	}
	return int(n), nil
}

// decimalVar declares an int flag read in base 10, with default def.
func decimalVar(fs *flag.FlagSet, p *int, name string, def int, usage string) {
	*p = def
	fs.Var((*decimal)(p), name, usage)
}

// duration is a time.Duration flag whose error says what a duration looks
// like: the flag package's says only "parse error", so "--ttl 5" (minutes?
// seconds?) got no hint.
type duration time.Duration

func (d *duration) String() string { return time.Duration(*d).String() }

func (d *duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration with a unit, such as 90s, 15m or 2h")
	}
	*d = duration(v)
	return nil
}

// durationVar declares a duration flag with default def.
func durationVar(fs *flag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	fs.Var((*duration)(p), name, usage)
}
