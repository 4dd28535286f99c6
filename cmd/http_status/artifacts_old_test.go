//go:build !go1.26

package main

import (
	"os"
	"testing"
)

// artifactDir is where a test keeps what a person may want to look at
// (screenshots). Before Go 1.26 (no T.ArtifactDir) it is a directory that
// is kept, and logged.
func artifactDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "http_status-"+t.Name()+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("artifacts in %s", d)
	return d
}
