package storage

import (
	"reflect"
	"testing"
)

// FuzzParseEpochs feeds leader-epoch-checkpoint files to their parser: it
// must never panic, and what it accepts must encode back to a file that
// parses to the same entries.
func FuzzParseEpochs(f *testing.F) {
	for _, seed := range []string{
		"",
		"0\n0\n",
		"0\n2\n0 0\n3 1200\n",
		"0\n2\n0 0\n3 1200\ngarbage",
		"1\n1\n0 0\n",
		"0\n4294967295\n",
		"0\n1\n-1 5\n",
		"0\n2\n3 10\n2 20\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := parseEpochs(b)
		if err != nil {
			return
		}
		again, err := parseEpochs(encodeEpochs(es))
		if err != nil || !reflect.DeepEqual(again, es) && len(es) > 0 {
			t.Fatalf("entries %v re-read as %v, %v", es, again, err)
		}
	})
}
