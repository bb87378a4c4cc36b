package main

import (
	"reflect"
	"testing"
)

func TestParseListeners(t *testing.T) {
	got, err := parseListeners("internal://0.0.0.0:29092, EXTERNAL://0.0.0.0:9092", "INTERNAL://gregor:29092")
	if err != nil {
		t.Fatal(err)
	}
	want := []listenerSpec{
		{name: "INTERNAL", bind: "0.0.0.0:29092", host: "gregor", port: 29092},
		{name: "EXTERNAL", bind: "0.0.0.0:9092", host: "localhost", port: 9092},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for _, c := range []struct{ listeners, advertised string }{
		{"", ""},
		{"A://h:1,A://h:2", ""},
		{"A://h:1", "B://h:2"},
		{"h:1", ""},
		{"A://h:0", ""},
		{"A://h:1", "A://nohostport"},
		{"A/B://h:1", ""},
	} {
		if _, err := parseListeners(c.listeners, c.advertised); err == nil {
			t.Errorf("parseListeners(%q, %q) accepted", c.listeners, c.advertised)
		}
	}
}
