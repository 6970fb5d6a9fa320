package main

// procsCases are the --procs cases of the long-running commands (serve,
// follow): one core unless --procs says otherwise; --procs 0 keeps Go's
// default, here set by GOMAXPROCS.
var procsCases = []struct {
	name string
	env  []string
	args []string
	want int
}{
	{"default", []string{"GOMAXPROCS=3"}, nil, 1},
	{"flag", nil, []string{"--procs", "2"}, 2},
	{"Go's default", []string{"GOMAXPROCS=3"}, []string{"--procs", "0"}, 3},
}
