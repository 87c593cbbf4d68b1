//go:build !linux

package daemon

func notDumpable() {}
