package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Timeouts bound how long a client may hold a connection without doing
// its part.
type Timeouts struct {
	Header time.Duration // to send a request's headers
	Body   time.Duration // to send a body, at most (the API sets shorter ones per route)
	Idle   time.Duration // between requests on a kept-alive connection
}

// DefaultTimeouts are the server's.
var DefaultTimeouts = Timeouts{Header: 10 * time.Second, Body: uploadBodyTimeout, Idle: 2 * time.Minute}

// NewHTTPServer is the API's HTTP server: requests end when base does. No
// write timeout: long polls and log follows hold responses open, and end
// with the request's context.
func NewHTTPServer(h http.Handler, base context.Context, log *slog.Logger, t Timeouts) *http.Server {
	return &http.Server{
		BaseContext:       func(net.Listener) context.Context { return base },
		Handler:           h,
		ReadHeaderTimeout: t.Header,
		ReadTimeout:       t.Body,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
