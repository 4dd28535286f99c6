//go:build go1.26

package main

import "testing"

// artifactDir is where a test keeps what a person may want to look at
// (screenshots): go test -artifacts keeps it under -outputdir.
func artifactDir(t *testing.T) string {
	t.Logf("artifacts in %s (kept with go test -artifacts)", t.ArtifactDir())
	return t.ArtifactDir()
}
