// Package sipptest drives SIPp (and the server under test) from Go tests
// and from the benchmark harness: it finds the sipp binary, allocates
// loopback ports, runs UAS/UAC scenarios with bounded call counts, rates and
// timeouts, parses SIPp's statistics files, and makes sure every process it
// started is gone when the test ends.
package sipptest

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Stats is the outcome of a SIPp run, read from its -trace_stat file
// (cumulative "(C)" columns of the last line).
type Stats struct {
	// Created is the number of calls SIPp created (TotalCallCreated).
	Created int64
	// Successful is SuccessfulCall(C).
	Successful int64
	// Failed is FailedCall(C).
	Failed int64
	// Retransmissions is Retransmissions(C): SIP messages SIPp had to resend.
	Retransmissions int64
	// Unexpected is FailedUnexpectedMessage(C).
	Unexpected int64
	// TimeoutOnRecv is FailedTimeoutOnRecv(C).
	TimeoutOnRecv int64
	// MaxUDPRetrans is FailedMaxUDPRetrans(C).
	MaxUDPRetrans int64
	// OutOfCall is OutOfCallMsgs(C): messages that matched no call.
	OutOfCall int64
	// Dead is DeadCallMsgs(C): messages for calls already finished.
	Dead int64
	// Fields holds every column of the last line by header name.
	Fields map[string]string
}

// ParseStatFile reads a SIPp -trace_stat (-stf) CSV file and returns the
// cumulative figures of its last line.
func ParseStatFile(path string) (Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return Stats{}, err
	}
	defer f.Close()
	return ParseStats(f)
}

// ParseStats parses SIPp -trace_stat CSV content (semicolon separated, one
// header line then one line per dump period).
func ParseStats(r io.Reader) (Stats, error) {
	cr := csv.NewReader(bufio.NewReader(r))
	cr.Comma = ';'
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	var header, last []string
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Stats{}, fmt.Errorf("sipp stats: %w", err)
		}
		if header == nil {
			header = rec
			continue
		}
		if len(rec) > 1 {
			last = rec
		}
	}
	if header == nil || last == nil {
		return Stats{}, errors.New("sipp stats: no data line")
	}
	s := Stats{Fields: make(map[string]string, len(header))}
	for i, h := range header {
		if i < len(last) {
			s.Fields[strings.TrimSpace(h)] = strings.TrimSpace(last[i])
		}
	}
	num := func(name string) int64 {
		v, _ := strconv.ParseInt(s.Fields[name], 10, 64)
		return v
	}
	s.Created = num("TotalCallCreated")
	s.Successful = num("SuccessfulCall(C)")
	s.Failed = num("FailedCall(C)")
	s.Retransmissions = num("Retransmissions(C)")
	s.Unexpected = num("FailedUnexpectedMessage(C)")
	s.TimeoutOnRecv = num("FailedTimeoutOnRecv(C)")
	s.MaxUDPRetrans = num("FailedMaxUDPRetrans(C)")
	s.OutOfCall = num("OutOfCallMsgs(C)")
	s.Dead = num("DeadCallMsgs(C)")
	return s, nil
}

// Latency summarises response times of one SIPp response-time measure
// (rtd number), in milliseconds. SIPp measures with millisecond resolution.
type Latency struct {
	Count int
	Mean  float64
	P50   float64
	P99   float64
	Max   float64
}

// ParseRTTFile reads a SIPp -trace_rtt file ("Date_ms;response_time_ms;rtd_no")
// and returns the latency summary for each rtd number.
func ParseRTTFile(path string) (map[int]Latency, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseRTT(f)
}

// ParseRTT parses SIPp -trace_rtt content; see ParseRTTFile.
func ParseRTT(r io.Reader) (map[int]Latency, error) {
	samples := map[int][]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		parts := strings.Split(strings.TrimSpace(sc.Text()), ";")
		if len(parts) < 3 {
			continue
		}
		v, err1 := strconv.ParseFloat(parts[1], 64)
		n, err2 := strconv.Atoi(parts[2])
		if err1 != nil || err2 != nil {
			continue // header or partial line
		}
		samples[n] = append(samples[n], v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := make(map[int]Latency, len(samples))
	for n, v := range samples {
		out[n] = Summarize(v)
	}
	return out, nil
}

// Summarize computes count, mean, median, 99th percentile and maximum of v
// (nearest-rank percentiles). v is sorted in place.
func Summarize(v []float64) Latency {
	if len(v) == 0 {
		return Latency{}
	}
	sort.Float64s(v)
	var sum float64
	for _, x := range v {
		sum += x
	}
	rank := func(p float64) float64 {
		i := int(p*float64(len(v))+0.999999) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(v) {
			i = len(v) - 1
		}
		return v[i]
	}
	return Latency{Count: len(v), Mean: sum / float64(len(v)), P50: rank(0.50), P99: rank(0.99), Max: v[len(v)-1]}
}
