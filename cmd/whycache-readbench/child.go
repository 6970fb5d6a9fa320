package main

import (
	"bufio"
	"io"

	"github.com/whycache/whycache/prefixtree"
	"github.com/whycache/whycache/shm"
)

// beginRole is the common start of a reader or writer process: it opens
// the workload state, touches every page of it, reports ready on stdout
// and waits for the start signal on in. The caller closes the tree.
func beginRole(cfg config, in *bufio.Scanner, stdout io.Writer) (*prefixtree.Tree, []byte, error) {
	tr, keys, err := openWorkload(cfg.state, cfg.keys)
	if err != nil {
		return nil, nil, err
	}
	prefault(tr.File())
	if err := send(stdout, message{Event: eventReady}); err != nil {
		tr.Close()
		return nil, nil, err
	}
	if err := expect(in, cmdGo); err != nil {
		tr.Close()
		return nil, nil, err
	}
	return tr, keys, nil
}

// faultSink keeps prefault's reads from being optimized away.
var faultSink byte

// prefault touches every page of the state file once, so that the timed
// part measures a process in its steady state rather than its first page
// faults on the mapping.
func prefault(f *shm.File) {
	m, size := f.Mem(), f.Size()
	var x byte
	for off := uint64(0); off < size; off += shm.PageSize {
		x ^= m[off]
	}
	faultSink = x
}
