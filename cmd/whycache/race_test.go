//go:build race

package main

// raceEnabled makes TestMain build the command with -race too.
const raceEnabled = true
