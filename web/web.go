// Package web is the studio's look: its HTML templates and its static
// files (one stylesheet, one small script, no build step), embedded in the
// paddock binary. internal/studio renders them.
package web

import "embed"

// FS holds templates/*.html and static/*.
//
//go:embed templates static
var FS embed.FS
