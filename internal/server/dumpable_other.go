//go:build !linux

package server

func notDumpable() {}
