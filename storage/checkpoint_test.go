package storage

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestOffsetCheckpointRoundTrip(t *testing.T) {
	dir := t.TempDir()
	got, ok, err := ReadOffsetCheckpoint(nil, dir, LogStartOffsetCheckpoint)
	if err != nil || ok || len(got) != 0 {
		t.Fatalf("absent checkpoint: %v %v %v, want empty, not ok", got, ok, err)
	}
	want := map[TopicPartition]int64{{"orders", 1}: 0, {"orders", 0}: 1234567, {"__consumer_offsets", 7}: 42}
	if err := WriteOffsetCheckpoint(nil, dir, LogStartOffsetCheckpoint, want); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, LogStartOffsetCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	// Kafka's format, sorted.
	if s := string(raw); s != "0\n3\n__consumer_offsets 7 42\norders 0 1234567\norders 1 0\n" {
		t.Fatalf("file:\n%s", s)
	}
	got, ok, err = ReadOffsetCheckpoint(nil, dir, LogStartOffsetCheckpoint)
	if err != nil || !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("read back %v %v %v, want %v", got, ok, err, want)
	}
}

func TestOffsetCheckpointRejects(t *testing.T) {
	for _, bad := range []string{
		"", "0\n", "0\n1\n", "0\n1\nt 0 1", "0\n2\nt 0 1\n", "0\n1\nt 0\n", "0\n1\nt -1 0\n",
		"0\n1\nt 0 -5\n", "0\n1\nt x 0\n", "0\n2\nt 0 1\nt 0 2\n", "0\n-1\n", "0\n1\n 0 1\n",
	} {
		if got, err := DecodeOffsetCheckpoint([]byte(bad)); err == nil {
			t.Errorf("%q decoded as %v", bad, got)
		}
	}
	if _, err := DecodeOffsetCheckpoint([]byte("1\n0\n")); !errors.Is(err, ErrCheckpointVersion) {
		t.Errorf("version 1: %v, want ErrCheckpointVersion", err)
	}
}

// FuzzDecodeOffsetCheckpoint: the parser never panics, and what it accepts
// encodes back to a file that parses to the same entries.
func FuzzDecodeOffsetCheckpoint(f *testing.F) {
	for _, seed := range []string{"", "0\n0\n", "0\n1\nt 0 5\n", "0\n1\nt 0 5\ngarbage", "0\n4294967295\n", "1\n0\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeOffsetCheckpoint(b)
		if err != nil {
			return
		}
		again, err := DecodeOffsetCheckpoint(EncodeOffsetCheckpoint(got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("%v re-read as %v, %v", got, again, err)
		}
	})
}
