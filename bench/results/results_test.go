package results

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func sample() *Report {
	r := &Report{
		Config: Config{Command: "bench", Transports: []string{TCP, RawTCP}, Writers: 4, Readers: 16, Channels: 64,
			RecordSize: 64, Selector: "roundrobin", Duration: "5s", BufferTimeout: "100ms", SegmentSize: 32768,
			NetworkMemory: 64 << 20, SampleEvery: 1, Verification: "everything"},
		Results: []Result{
			{Transport: TCP, Records: 1000, Bytes: 64000, StreamBytes: 68000, Seconds: 0.5, Sent: 1000,
				LatencyUS: Latency{P50: 10, P99: 20, P999: 30, Max: 40, Samples: 1000}, CPUSeconds: 0.7},
			{Transport: RawTCP, Bytes: 136000, StreamBytes: 136000, Seconds: 0.5},
		},
	}
	for i := range r.Results {
		r.Results[i].Finish()
	}
	return r
}

func TestJSONShape(t *testing.T) {
	var buf bytes.Buffer
	if err := sample().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	cfg, ok := m["config"].(map[string]any)
	if !ok {
		t.Fatalf("no config object: %s", buf.String())
	}
	for _, k := range []string{"transports", "writers", "readers", "record_size", "selector", "duration", "buffer_timeout", "segment_size", "network_memory", "record_rate"} {
		if _, ok := cfg[k]; !ok {
			t.Errorf("config lacks %q", k)
		}
	}
	res, ok := m["results"].([]any)
	if !ok || len(res) != 2 {
		t.Fatalf("results: %v", m["results"])
	}
	r0 := res[0].(map[string]any)
	for _, k := range []string{"transport", "records", "bytes", "seconds", "records_per_ms", "mbytes_per_sec", "latency_us", "lost", "duplicated", "reordered", "cpu_seconds"} {
		if _, ok := r0[k]; !ok {
			t.Errorf("result lacks %q", k)
		}
	}
	lat := r0["latency_us"].(map[string]any)
	for _, k := range []string{"p50", "p99", "p999", "max"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency_us lacks %q", k)
		}
	}
	if r0["transport"] != "tcp" || r0["records_per_ms"].(float64) != 2 || r0["mbytes_per_sec"].(float64) != 0.128 {
		t.Errorf("values: %v", r0)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	want := sample()
	var buf bytes.Buffer
	if err := want.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

func TestTableAndClean(t *testing.T) {
	r := sample()
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	// tcp stream 0.136 MB/s vs raw 0.272 MB/s.
	if !strings.Contains(out, "0.50") || !strings.Contains(out, "raw-tcp") {
		t.Fatalf("table:\n%s", out)
	}
	if !r.Clean() {
		t.Fatal("clean report reported unclean")
	}
	for _, f := range []func(*Result){
		func(x *Result) { x.Lost = 1 },
		func(x *Result) { x.Duplicated = 1 },
		func(x *Result) { x.Reordered = 1 },
		func(x *Result) { x.ChecksumFailures = 1 },
		func(x *Result) { x.Invalid = 1 },
		func(x *Result) { x.Error = "boom" },
	} {
		r := sample()
		f(&r.Results[0])
		if r.Clean() {
			t.Fatalf("unclean result %+v reported clean", r.Results[0])
		}
	}
}
