// Package version holds the version of this paddock build, set at link
// time with -ldflags "-X github.com/paddock-ml/paddock/internal/version.Version=…".
package version

// Version is this build's version.
var Version = "0.1.0-dev"
