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
