package sip

import (
	"os"
	"path/filepath"
	"testing"
)

// tortureSeeds returns the RFC 4475 and RFC 5118 messages in testdata.
func tortureSeeds(tb testing.TB) [][]byte {
	var out [][]byte
	for _, dir := range []string{"testdata/rfc4475", "testdata/rfc5118"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.dat"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}
