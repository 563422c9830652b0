package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestRepeatFlagErrorsExit2WithOneLine(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	checkUsageErrors(t, []usageCase{
		{[]string{"bench", "-repeat", "0"}, "-repeat must be 1 to 100 rounds (got 0)"},
		{[]string{"bench", "-repeat", "-2"}, "-repeat must be 1 to"},
		{[]string{"bench", "-repeat", "101"}, "-repeat must be 1 to"},
		{[]string{"bench", "-repeat", "x"}, "invalid value \"x\" for flag -repeat"},
		{[]string{"bench", "-calibrate", "-1s"}, "-calibrate must be >= 0"},
		{[]string{"bench", "-loss", "1%", "-seeds", "x"}, `bad seed "x"`},
		{[]string{"bench", "-loss", "1%", "-seeds", "1,two,3"}, `bad seed "two"`},
		{[]string{"bench", "-loss", "1%", "-seeds", "1,,3"}, `bad seed ""`},
		{[]string{"bench", "-loss", "1%", "-seeds", "-3"}, `bad seed "-3"`},
		{[]string{"bench", "-loss", "1%", "-seeds", "21"}, "21 seeds: want 1 to 20"},
		{[]string{"bench", "-loss", "1%", "-seeds", "0"}, "0 seeds: want 1 to 20"},
		{[]string{"bench", "-loss", "1%", "-seeds", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21"}, "21 seeds is more than 20"},
		{[]string{"bench", "-loss", "1%", "-seeds", "4,4"}, "seed 4 given twice"},
		{[]string{"bench", "-loss", "1%", "-seeds", "3", "-seed", "2"}, "-seed and -seeds both"},
		{[]string{"bench", "-seeds", "3"}, "-seeds needs the emulated link"},
		{[]string{"bench", "-loss", "1%", "-repeat", "3"}, "on the emulated link repeat with -seeds"},
		{[]string{"bench", "-connections", "0"}, "-connections must be 1 to 64 (got 0)"},
		{[]string{"bench", "-connections", "-1"}, "-connections must be 1 to 64 (got -1)"},
		{[]string{"bench", "-connections", "65"}, "-connections must be 1 to 64 (got 65)"},
		{[]string{"serve", "-connections", "65"}, "-connections must be 1 to 64"},
		{[]string{"bench", "-qlog", filepath.Join(notADir, "qlog")}, "-qlog " + notADir},
		{[]string{"bench", "-sweep", "load=0,0.5", "-rate", "10mbit"}, "outside (0, 1]"},
		{[]string{"bench", "-sweep", "load=0.5,1.2", "-rate", "10mbit"}, "outside (0, 1]"},
		{[]string{"bench", "-sweep", "load=half", "-rate", "10mbit"}, "bad load"},
		{[]string{"bench", "-sweep", "load=0.1,0.5"}, "add -rate"},
		{[]string{"bench", "-sweep", "load=0.1", "-rate", "10mbit", "-load", "0.2"}, "give it once"},
	})
}

func TestRepeatFlagsParse(t *testing.T) {
	o := mustParse(t, "bench")
	if o.rep.repeat != 3 || o.rep.calibrate != 500*time.Millisecond || o.rep.connections != 1 || o.rep.seeds.seeds != nil {
		t.Errorf("defaults %+v", o.rep)
	}
	for _, tc := range []struct {
		arg  string
		want []int64
	}{
		{"3", []int64{1, 2, 3}},
		{"1", []int64{1}},
		{"20", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}},
		{"1,7,11", []int64{1, 7, 11}},
		{" 11 , 0 ", []int64{11, 0}},
	} {
		o := mustParse(t, "bench", "-loss", "1%", "-seeds", tc.arg)
		if !reflect.DeepEqual(o.rep.seeds.seeds, tc.want) || o.rep.repeat != 1 || o.rep.calibrate != 0 {
			t.Errorf("-seeds %q: %v (repeat %d), want %v", tc.arg, o.rep.seeds.seeds, o.rep.repeat, tc.want)
		}
		if c := o.resultsConfig(); !reflect.DeepEqual(c.Seeds, tc.want) {
			t.Errorf("-seeds %q: config seeds %v", tc.arg, c.Seeds)
		}
	}
	// Without -seeds the link runs the one -seed.
	if o := mustParse(t, "bench", "-loss", "1%", "-seed", "9"); !reflect.DeepEqual(o.rep.seeds.seeds, []int64{9}) {
		t.Errorf("-seed 9: %v", o.rep.seeds.seeds)
	}
	dir := filepath.Join(t.TempDir(), "a", "b")
	o = mustParse(t, "bench", "-connections", "8", "-qlog", dir, "-repeat", "5")
	c := o.resultsConfig()
	if c.Connections != 8 || c.QlogDir != dir || c.Repeat != 5 || c.Calibrate != "500ms" {
		t.Errorf("config %+v", c)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Errorf("-qlog did not create %s: %v", dir, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("-qlog check left files: %v", ents)
	}
	if ts := o.transportSettings(); ts.connections != 8 || tcpConfig(Hooks{}, ts).ConnectionsPerNode != 8 {
		t.Errorf("settings %+v", ts)
	}
	o = mustParse(t, "bench", "-sweep", "load=0.05,0.1,1", "-rate", "100mbit")
	if sw := o.link.sweep.sw; sw.Param != "load" || !reflect.DeepEqual(sw.X, []float64{0.05, 0.1, 1}) {
		t.Errorf("load sweep %+v", sw)
	}
}

func TestCalibrationBaselines(t *testing.T) {
	for _, tc := range []struct {
		items, want []string
	}{
		{[]string{"tcp", "quic", "raw-tcp", "raw-quic"}, []string{"raw-tcp", "raw-quic"}},
		{[]string{"quic"}, []string{"raw-quic"}},
		{[]string{"raw-tcp"}, []string{"raw-tcp"}},
		{[]string{"mem"}, nil},
	} {
		if got := calibrationBaselines(tc.items); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v: %v, want %v", tc.items, got, tc.want)
		}
	}
}
