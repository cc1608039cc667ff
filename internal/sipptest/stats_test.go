package sipptest

import (
	"strings"
	"testing"
)

func TestParseStats(t *testing.T) {
	in := "StartTime;TotalCallCreated;SuccessfulCall(C);FailedCall(C);Retransmissions(C);FailedUnexpectedMessage(C);\n" +
		"2026-11-22\t18:43:25.698207\t1795373005.698207;0;0;0;0;0;\n" +
		"2026-11-22\t18:43:27.698207\t1795373007.698207;20;19;1;3;1;\n"
	s, err := ParseStats(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if s.Created != 20 || s.Successful != 19 || s.Failed != 1 || s.Retransmissions != 3 || s.Unexpected != 1 {
		t.Fatalf("got %+v", s)
	}
	if _, err := ParseStats(strings.NewReader("a;b;\n")); err == nil {
		t.Fatal("want error for header-only file")
	}
}

func TestParseRTT(t *testing.T) {
	in := "Date_ms;response_time_ms;rtd_no\n108.001;4;1\n112.001;0;2\n208.001;2;1\n300;6;1\n"
	m, err := ParseRTT(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	l := m[1]
	if l.Count != 3 || l.Mean != 4 || l.P50 != 4 || l.P99 != 6 || l.Max != 6 {
		t.Fatalf("rtd 1: %+v", l)
	}
	if m[2].Count != 1 {
		t.Fatalf("rtd 2: %+v", m[2])
	}
}

func FuzzParseStats(f *testing.F) {
	f.Add("TotalCallCreated;SuccessfulCall(C);FailedCall(C);\n1;2;3;\n")
	f.Add("a;b\n\"x;y\n")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseStats(strings.NewReader(in))
		if err == nil && s.Fields == nil {
			t.Fatal("nil fields without error")
		}
		_, _ = ParseRTT(strings.NewReader(in))
	})
}
