package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The counts equal those of tr | sort | uniq -c on the same text.
func TestCountsMatchUniq(t *testing.T) {
	for _, tool := range []string{"tr", "sort", "uniq", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: the reference needs coreutils", tool)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	vocab := strings.Fields("the a of and to in is that it was for on are as with his they at be this from have or by one had not but what all were when we there can an your which their said if do will each about how up out them then she many some so these would other into has more her two like him see time could no make than first been its who now people my made over did down only way find use may water long little very after words called just where most know")
	var text bytes.Buffer
	for i := range 30000 {
		text.WriteString(vocab[rng.IntN(len(vocab))])
		if i%13 == 12 {
			text.WriteString("\n")
		} else {
			text.WriteString(" \t "[i%3 : i%3+1])
		}
	}
	file := filepath.Join(t.TempDir(), "text")
	if err := os.WriteFile(file, text.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got bytes.Buffer
	if err := run(ctx, bytes.NewReader(text.Bytes()), &got, 4); err != nil {
		t.Fatal(err)
	}
	ref, err := exec.CommandContext(ctx, "sh", "-c", fmt.Sprintf("tr -s '[:space:]' '\\n' < %q | LC_ALL=C sort | uniq -c", file)).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	for _, line := range strings.Split(strings.TrimSpace(string(ref)), "\n") {
		f := strings.Fields(line)
		fmt.Fprintf(&want, "%s %s\n", f[0], f[1])
	}
	if got.String() != want.String() {
		t.Fatalf("counts differ from uniq -c:\ngot:\n%.400s\nwant:\n%.400s", got.String(), want.String())
	}
}
