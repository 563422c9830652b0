package spill_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/qexchange/qexchange/exchange/spill"
)

// FuzzReadDamagedFile overwrites part of a spilled file (a bad disk, a
// stray writer) and reads every subpartition back: each buffer either
// comes back exactly as written or fails with a *CorruptError; nothing
// panics and nothing is read beyond the destination.
func FuzzReadDamagedFile(f *testing.F) {
	f.Add(uint16(0), []byte{0xff})
	f.Add(uint16(4), []byte{0, 0, 0x10, 0})
	f.Add(uint16(8), []byte{9, 2})
	f.Add(uint16(16+100), []byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint16(3*(16+100)+12), []byte{1, 2, 3, 4})
	m, err := spill.NewManager(spill.Config{Dir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	defer m.Close()
	sizes := []int{100, 37, 0}
	f.Fuzz(func(t *testing.T, at uint16, damage []byte) {
		p := writePartition(t, m, 2, 3, sizes)
		defer p.Release()
		file, err := os.OpenFile(p.Path(), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		off := int64(at) % p.Size()
		damage = damage[:min(len(damage), int(p.Size()-off))]
		if _, err := file.WriteAt(damage, off); err != nil {
			t.Fatal(err)
		}
		file.Close()
		want := make([]byte, 128)
		for sub := range 2 {
			r, err := p.NewReader(sub)
			if err != nil {
				t.Fatal(err)
			}
			dst := make([]byte, 128)
			for i := 0; ; i++ {
				n, meta, err := r.Next(dst[:100]) // a guard of 28 bytes
				if err == io.EOF {
					break
				}
				var ce *spill.CorruptError
				if errors.As(err, &ce) {
					break
				}
				if err != nil {
					t.Fatalf("sub %d buffer %d: untyped error %v", sub, i, err)
				}
				w := want[:sizes[(i+sub)%len(sizes)]]
				fillPayload(w, sub, i)
				if !bytes.Equal(dst[:n], w) || meta != metaFor(sub, i) {
					t.Fatalf("sub %d buffer %d: damage read back as data", sub, i)
				}
			}
			if !bytes.Equal(dst[100:], make([]byte, 28)) {
				t.Fatal("read beyond the destination")
			}
		}
	})
}
