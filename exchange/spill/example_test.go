package spill_test

import (
	"fmt"
	"io"
	"os"

	"github.com/qexchange/qexchange/exchange/spill"
	"github.com/qexchange/qexchange/exchange/wire"
)

// A producer spills two subpartitions; a consumer reads one of them back
// into a reusable buffer, as a view would into a pooled segment.
func Example() {
	dir, err := os.MkdirTemp("", "spill-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	m, err := spill.NewManager(spill.Config{Dir: dir})
	if err != nil {
		panic(err)
	}
	defer m.Close()

	w, err := m.NewWriter("job-a.0", 2)
	if err != nil {
		panic(err)
	}
	data := spill.Meta{DataType: wire.DataBuffer}
	w.Append(0, data, []byte("records for consumer 0"))
	w.Append(1, data, []byte("records for consumer 1"))
	w.Append(1, spill.Meta{DataType: wire.EventBuffer}, []byte("end"))
	p, err := w.Finish()
	if err != nil {
		panic(err)
	}
	defer p.Release()

	r, err := p.NewReader(1)
	if err != nil {
		panic(err)
	}
	segment := make([]byte, 32<<10)
	for {
		n, meta, err := r.Next(segment)
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		fmt.Printf("%v %q\n", meta.DataType, segment[:n])
	}
	// Output:
	// DataBuffer "records for consumer 1"
	// EventBuffer "end"
}
