package transport

import (
	"fmt"
	"strings"
	"testing"
)

// frameAll feeds data to frameSIP chunk bytes at a time, as a connection
// does (keeping the incomplete rest and the scan hint), and returns what
// it found: "M:" and a message, "PING", and a final "ERR ..." that ends
// the stream.
func frameAll(t testing.TB, data []byte, max, chunk int) []string {
	var out []string
	var buf []byte
	scan := 0
	for len(data) > 0 {
		n := min(chunk, len(data))
		buf = append(buf, data[:n]...)
		data = data[n:]
		for {
			kind, n, err := frameSIP(buf, max, &scan)
			switch kind {
			case frameMore:
			case frameSkip:
				if n < 1 || n > 2 {
					t.Fatalf("skip %d", n)
				}
				buf = buf[n:]
				continue
			case framePing:
				out = append(out, "PING")
				buf = buf[n:]
				continue
			case frameMessage:
				if n > max || n > len(buf) || n <= 0 {
					t.Fatalf("message of %d bytes (max %d, have %d)", n, max, len(buf))
				}
				out = append(out, "M:"+string(buf[:n]))
				buf = buf[n:]
				continue
			default:
				if err == nil {
					t.Fatal("error without error")
				}
				return append(out, "ERR "+err.Error())
			}
			break
		}
	}
	return out
}

func TestFrameSIPEverySplit(t *testing.T) {
	m1 := sipMsg("a", "hello\r\n\r\nworld")
	m2 := "SIP/2.0 200 OK\r\nl:0\r\n\r\n"
	m3 := "INFO sip:x SIP/2.0\r\nX-A: 1\r\n content-length: 9 (folded, ignored)\r\ncontent-LENGTH :  4 \r\n\r\nbody"
	stream := "\r\n\r\n" + m1 + "\r\n" + m2 + m3 + "\r\n\r\n\r\n" + m1
	want := []string{"PING", "M:" + m1, "M:" + m2, "M:" + m3, "PING", "M:" + m1}
	for chunk := 1; chunk <= len(stream); chunk++ {
		got := frameAll(t, []byte(stream), 1000, chunk)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("chunk %d: %q", chunk, got)
		}
	}
}

func TestFrameSIPErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n", errNoContentLength},
		{"OPTIONS sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n", errBadContentLength},
		{"OPTIONS sip:a SIP/2.0\r\nContent-Length:\r\n\r\n", errBadContentLength},
		{"OPTIONS sip:a SIP/2.0\r\nContent-Length: 1 2\r\n\r\n", errBadContentLength},
		{"OPTIONS sip:a SIP/2.0\r\nContent-Length: 9999999999\r\n\r\n", errBadContentLength},
		{"OPTIONS sip:a SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab", errBadContentLength},
		{"OPTIONS sip:a SIP/2.0\r\nContent-Length: 1000\r\n\r\n", errTooLarge},
		{"OPTIONS sip:a SIP/2.0\r\nX: " + strings.Repeat("x", 200), errTooLarge},
	} {
		got := frameAll(t, []byte(tc.in), 100, len(tc.in))
		if len(got) != 1 || got[0] != "ERR "+tc.want.Error() {
			t.Errorf("%.40q: %q, want %v", tc.in, got, tc.want)
		}
	}
	// The start line is not a header, however it looks.
	if got := frameAll(t, []byte("l: 5 x\r\nContent-Length: 0\r\n\r\n"), 100, 100); len(got) != 1 || got[0] != "M:l: 5 x\r\nContent-Length: 0\r\n\r\n" {
		t.Errorf("start line taken for a header: %q", got)
	}
}

// FuzzStreamFraming feeds arbitrary bytes to the framer whole and in
// chunks: it must not panic, never return a message longer than the
// maximum, and find the same things either way.
func FuzzStreamFraming(f *testing.F) {
	f.Add([]byte(sipMsg("a", "body")+"\r\n\r\n"+sipMsg("b", "")), uint8(7), uint16(500))
	f.Add([]byte("\r\n\r\n\r\nINVITE sip:a SIP/2.0\r\nl:3\r\n\r\nabc"), uint8(1), uint16(60))
	f.Add([]byte("X\r\nContent-Length: 99999999\r\n\r\n"), uint8(3), uint16(100))
	f.Add([]byte("\r\r\n\n\r\n\rA\r\n\r\n"), uint8(2), uint16(10))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8, max uint16) {
		m := int(max%4096) + 1
		whole := frameAll(t, data, m, len(data)+1)
		split := frameAll(t, data, m, int(chunk)%64+1)
		if fmt.Sprint(whole) != fmt.Sprint(split) {
			t.Fatalf("whole %q\nsplit %q", whole, split)
		}
		for _, s := range whole {
			if strings.HasPrefix(s, "M:") && len(s)-2 > m {
				t.Fatalf("message of %d > %d bytes", len(s)-2, m)
			}
		}
	})
}
