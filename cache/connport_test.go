package cache

import (
	"errors"
	"testing"
	"time"
)

func TestParseFlagConnPort(t *testing.T) {
	tests := []struct {
		in      string
		want    Entry
		invalid bool
	}{
		{"conn=443", Entry{State: Up, Weight: NoWeight, ConnPort: 443}, false},
		{"drain conn=8443 # deploy", Entry{State: Drain, Weight: NoWeight, ConnPort: 8443, Reason: "deploy"}, false},
		{"up 50% conn=1 until=2026-11-23T10:00:00Z", Entry{State: Up, Weight: 50, ConnPort: 1,
			Expires: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}, false},
		{"maint conn=65535", Entry{State: Maint, Weight: NoWeight, ConnPort: 65535}, false},
		// An unreadable conn= is ignored (it decides no traffic) and
		// noted; the drain around it still counts.
		{"drain conn=0", Entry{State: Drain, Weight: NoWeight}, true},
		{"drain conn=65536", Entry{State: Drain, Weight: NoWeight}, true},
		{"drain conn=", Entry{State: Drain, Weight: NoWeight}, true},
		{"drain conn=+80", Entry{State: Drain, Weight: NoWeight}, true},
		{"drain conn=080", Entry{State: Drain, Weight: NoWeight}, true},
		{"drain conn=http", Entry{State: Drain, Weight: NoWeight}, true},
		{"drain conn=80 conn=81", Entry{State: Drain, Weight: NoWeight, ConnPort: 80}, true},
		{"DRAIN CONN=443", Entry{State: Drain, Weight: NoWeight, ConnPort: 443}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFlag([]byte(tt.in))
			if (err != nil) != tt.invalid {
				t.Fatalf("err = %v, want invalid %v", err, tt.invalid)
			}
			if err != nil && !errors.Is(err, ErrGrammar) {
				t.Errorf("err %v is not ErrGrammar", err)
			}
			got.Invalid = ""
			if !got.SameAs(tt.want) || got.ConnPort != tt.want.ConnPort {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if tt.invalid {
				return
			}
			back, err := ParseFlag([]byte(got.Format()))
			if err != nil || !back.SameAs(got) {
				t.Errorf("round trip of %q: %+v, %v", got.Format(), back, err)
			}
		})
	}
	// An expired override keeps its conn port: it is a property of the
	// service, not of the state.
	e, _ := ParseFlag([]byte("drain until=2000-01-01T00:00:00Z conn=8443"))
	if eff := e.Effective(time.Now()); eff.State != Up || eff.ConnPort != 8443 {
		t.Errorf("expired: %+v", eff)
	}
	if (Entry{ConnPort: 1}).SameAs(Entry{ConnPort: 2}) {
		t.Error("SameAs ignores ConnPort")
	}
}
