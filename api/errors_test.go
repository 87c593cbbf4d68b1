package api

import (
	"errors"
	"fmt"
	"testing"
)

func TestCodesMapToStatusAndExitCode(t *testing.T) {
	cases := []struct {
		err    *Error
		status int
		exit   int
	}{
		{Invalid("max_nodes", "x"), 400, 2},
		{&Error{Code: CodeUnauthenticated}, 401, 1},
		{Forbidden("x"), 403, 1},
		{NotFound("x"), 404, 3},
		{Conflict("x"), 409, 4},
		{TooLarge("body", "x"), 413, 2},
		{Unavailable("x"), 503, 1},
		{InsufficientStorage("x"), 507, 1},
		{AsError(errors.New("disk on fire")), 500, 1},
	}
	if len(cases) != len(Codes) {
		t.Errorf("%d cases for %d codes: give every code a case", len(cases), len(Codes))
	}
	for _, tc := range cases {
		if got := tc.err.Code.HTTPStatus(); got != tc.status {
			t.Errorf("%s: status %d, want %d", tc.err.Code, got, tc.status)
		}
		if got := tc.err.Code.ExitCode(); got != tc.exit {
			t.Errorf("%s: exit %d, want %d", tc.err.Code, got, tc.exit)
		}
		if got := codeForStatus(tc.status); got != tc.err.Code {
			t.Errorf("status %d decodes to %s, want %s", tc.status, got, tc.err.Code)
		}
	}
}

func TestIsMatchesByCodeThroughWrapping(t *testing.T) {
	err := fmt.Errorf("creating: %w", NotFound("compute target %q not found", "x"))
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		t.Fatal("errors.Is does not match by code")
	}
	if e := Invalid("max_nodes", "max_nodes must be at least %d", 1); e.Field != "max_nodes" || e.Message != "max_nodes must be at least 1" {
		t.Fatalf("Invalid = %+v", e)
	}
	if AsError(errors.New("secret internals")).Message == "secret internals" {
		t.Fatal("an internal error's text reached the user")
	}
}
