package plot

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestChartsAreWritten(t *testing.T) {
	dir := t.TempDir()
	cdf := []Series{
		{Name: "tcp", Points: []Point{{0, 0}, {10, 0.5}, {30, 0.99}, {80, 1}}},
		{Name: "quic", Points: []Point{{10, 0.5}, {22, 0.99}, {40, 1}}},
		{Name: "ideal", Points: []Point{{10, 0.5}, {20, 0.99}, {31, 1}}},
	}
	if err := LatencyCDF(filepath.Join(dir, "cdf.png"), "latency", cdf); err != nil {
		t.Fatal(err)
	}
	sweep := []Series{{Name: "tcp", Points: []Point{{0, 11}, {1, 60}, {2, 95}}}, {Name: "quic", Points: []Point{{0, 11}, {1, 35}, {2, 50}}}}
	if err := Lines(filepath.Join(dir, "p99.svg"), "p99", "loss (%)", "ms", sweep, true); err != nil {
		t.Fatal(err)
	}
	png, err := os.ReadFile(filepath.Join(dir, "cdf.png"))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 5000 {
		t.Fatalf("cdf.png: %d bytes, %v", len(png), err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "p99.svg"))
	if err != nil || !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("quic")) {
		t.Fatalf("p99.svg: %v", err)
	}
}

func TestRangeBand(t *testing.T) {
	got := RangeBand([]float64{1, 2, 3}, []float64{10, 20, 30}, []float64{11, 22, 33})
	want := []Point{{1, 10}, {2, 20}, {3, 30}, {3, 33}, {2, 22}, {1, 11}}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("point %d: %v, want %v (all %v)", i, got[i], want[i], got)
		}
	}
}

// A band is drawn: the chart with one has an extra filled path.
func TestBandIsDrawn(t *testing.T) {
	dir := t.TempDir()
	pts := []Point{{1, 10}, {2, 20}, {3, 30}}
	plain := []Series{{Name: "tcp", Points: pts}}
	banded := []Series{{Name: "tcp", Points: pts, Band: RangeBand([]float64{1, 2, 3}, []float64{8, 15, 25}, []float64{12, 26, 40})}}
	a, b := filepath.Join(dir, "a.svg"), filepath.Join(dir, "b.svg")
	if err := Lines(a, "p99", "load", "ms", plain, true); err != nil {
		t.Fatal(err)
	}
	if err := Lines(b, "p99", "load", "ms", banded, true); err != nil {
		t.Fatal(err)
	}
	sa, _ := os.ReadFile(a)
	sb, _ := os.ReadFile(b)
	if bytes.Count(sb, []byte("<path")) <= bytes.Count(sa, []byte("<path")) || !bytes.Contains(sb, []byte("fill-opacity")) && !bytes.Contains(sb, []byte("rgba")) {
		t.Fatalf("band not drawn: %d vs %d paths", bytes.Count(sb, []byte("<path")), bytes.Count(sa, []byte("<path")))
	}
}
