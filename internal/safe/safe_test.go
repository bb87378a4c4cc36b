package safe

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
)

func TestRunRecoversAndLogsOnce(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	cleaned := false
	panicked := Run(log, "test-loop", func() {
		defer func() { cleaned = true }()
		index([]int{1}, 1) // a runtime panic: index out of range
	})
	if !panicked || !cleaned {
		t.Fatalf("Run: panicked %v, deferred cleanup ran %v; want both", panicked, cleaned)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("logged %d lines, want 1:\n%s", len(lines), buf.String())
	}
	var ev map[string]string
	if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil {
		t.Fatalf("log line %q: %v", lines[0], err)
	}
	if ev["level"] != "error" || ev["component"] != "test-loop" || !strings.Contains(ev["panic_value"], "index out of range") ||
		!strings.Contains(ev["stack"], "safe.TestRunRecoversAndLogsOnce") {
		t.Errorf("log line %v: want level error, component test-loop, the panic value and a stack naming the test", ev)
	}
}

func TestRunWithoutPanic(t *testing.T) {
	var buf bytes.Buffer
	ran := false
	if Run(zerolog.New(&buf), "quiet", func() { ran = true }) || !ran {
		t.Fatalf("Run of a function that returns: ran %v", ran)
	}
	if buf.Len() != 0 {
		t.Errorf("logged %q for a function that did not panic", buf.String())
	}
}

func TestGoCountsInWaitGroup(t *testing.T) {
	var buf syncBuffer
	var wg sync.WaitGroup
	for i := range 4 {
		Go(&wg, zerolog.New(&buf), "worker", func() {
			if i%2 == 0 {
				panic("boom")
			}
		})
	}
	wg.Wait() // returns only if every goroutine, panicked or not, is done
	if n := strings.Count(buf.String(), "background task panicked"); n != 2 {
		t.Errorf("%d panics logged, want 2:\n%s", n, buf.String())
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // protected by mu
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// index returns s[i]; it panics when i is out of range.
func index(s []int, i int) int { return s[i] }
