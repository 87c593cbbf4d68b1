// Package api holds the wire types of Paddock's REST API, its one
// vocabulary of errors (Code: an HTTP status on the wire, an exit code in
// the CLI) and its Go clients: Client for users' calls and AgentClient for
// the node agent's protocol. The server, the CLI, the node agent and the
// tests share these types, so a field has one name and one meaning
// everywhere.
package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is a stable, machine-readable error code sent on the wire in
// {"error": {"code": ...}}. The CLI maps codes to exit codes and the server
// maps them to HTTP statuses; nothing string-matches messages.
type Code string

// The error codes Paddock returns.
const (
	CodeInvalid             Code = "Invalid"             // bad input: HTTP 400, exit 2
	CodeUnauthenticated     Code = "Unauthenticated"     // missing or wrong token: HTTP 401, exit 1
	CodeForbidden           Code = "Forbidden"           // not allowed: HTTP 403, exit 1
	CodeNotFound            Code = "NotFound"            // HTTP 404, exit 3
	CodeConflict            Code = "Conflict"            // duplicate or wrong state: HTTP 409, exit 4
	CodeTooLarge            Code = "TooLarge"            // a request body over its route's limit: HTTP 413, exit 2
	CodeUnavailable         Code = "Unavailable"         // server or backend cannot serve now: HTTP 503, exit 1
	CodeInsufficientStorage Code = "InsufficientStorage" // the server's disk is full: HTTP 507, exit 1
	CodeInternal            Code = "Internal"            // a bug or an unexpected failure: HTTP 500, exit 1
)

// Codes lists every code, so that tests and documents can check that each
// is handled.
var Codes = []Code{CodeInvalid, CodeUnauthenticated, CodeForbidden, CodeNotFound, CodeConflict,
	CodeTooLarge, CodeUnavailable, CodeInsufficientStorage, CodeInternal}

// Error is the error every layer of Paddock returns for conditions a user
// can act on. Message is one sentence written for the user; Field names the
// input at fault when there is one.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// Is lets errors.Is match any *Error with the same code, so callers can
// write errors.Is(err, api.ErrNotFound).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Sentinels for errors.Is; they match any *Error with the same code.
var (
	ErrInvalid         = &Error{Code: CodeInvalid}
	ErrUnauthenticated = &Error{Code: CodeUnauthenticated}
	ErrForbidden       = &Error{Code: CodeForbidden}
	ErrNotFound        = &Error{Code: CodeNotFound}
	ErrConflict        = &Error{Code: CodeConflict}
	ErrUnavailable     = &Error{Code: CodeUnavailable}
	ErrTooLarge        = &Error{Code: CodeTooLarge}
	// ErrInsufficientStorage matches CodeInsufficientStorage.
	ErrInsufficientStorage = &Error{Code: CodeInsufficientStorage}
)

// Invalid reports bad input in field; the message should name the field and
// the rule it breaks.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound reports that a named thing does not exist.
func NotFound(format string, args ...any) *Error {
	return &Error{Code: CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// Conflict reports a duplicate or an operation the current state forbids.
func Conflict(format string, args ...any) *Error {
	return &Error{Code: CodeConflict, Message: fmt.Sprintf(format, args...)}
}

// Unauthenticated is a request without a valid credential (401).
func Unauthenticated(format string, args ...any) *Error {
	return &Error{Code: CodeUnauthenticated, Message: fmt.Sprintf(format, args...)}
}

// Forbidden reports an operation the caller may not perform.
func Forbidden(format string, args ...any) *Error {
	return &Error{Code: CodeForbidden, Message: fmt.Sprintf(format, args...)}
}

// TooLarge reports a request body over the limit of its route; the message
// should say the limit.
func TooLarge(field, format string, args ...any) *Error {
	return &Error{Code: CodeTooLarge, Field: field, Message: fmt.Sprintf(format, args...)}
}

// InsufficientStorage reports an upload the server has no disk space for.
func InsufficientStorage(format string, args ...any) *Error {
	return &Error{Code: CodeInsufficientStorage, Message: fmt.Sprintf(format, args...)}
}

// Unavailable reports a backend that cannot serve the request now.
func Unavailable(format string, args ...any) *Error {
	return &Error{Code: CodeUnavailable, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err as an *Error; anything else becomes CodeInternal with
// a generic message so internal details never reach the user.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error; the server log has the details"}
}

// HTTPStatus is the HTTP status for code.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeInvalid:
		return http.StatusBadRequest
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeConflict:
		return http.StatusConflict
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeInsufficientStorage:
		return http.StatusInsufficientStorage
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// ExitCode is the CLI exit code for code: 2 invalid input (a body too
// large included), 3 not found, 4 conflict, 1 anything else.
func (c Code) ExitCode() int {
	switch c {
	case CodeInvalid, CodeTooLarge:
		return 2
	case CodeNotFound:
		return 3
	case CodeConflict:
		return 4
	default:
		return 1
	}
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// HeaderRetryElsewhere is set on a 503 answer to a request the server did
// not apply because another server of the workspace must take it (this
// one does not lead, or lost the lead): a client that knows several
// servers sends the request to the next.
const HeaderRetryElsewhere = "Paddock-Retry-Elsewhere"
