// Package cmdutil holds what every obol command shares: the IO streams, the
// global flags, output formatting and the error conventions.
package cmdutil

import (
	"bytes"
	"io"
	"os"

	"golang.org/x/term"
)

// IOStreams is where a command reads and writes. Commands never touch
// os.Stdout directly, so tests can capture everything.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	outTTY bool
	inTTY  bool
}

// System returns streams bound to the process's stdin, stdout and stderr.
func System(in io.Reader, out, errOut io.Writer) *IOStreams {
	s := &IOStreams{In: in, Out: out, ErrOut: errOut}
	if f, ok := out.(*os.File); ok {
		s.outTTY = term.IsTerminal(int(f.Fd()))
	}
	if f, ok := in.(*os.File); ok {
		s.inTTY = term.IsTerminal(int(f.Fd()))
	}
	return s
}

// Test returns streams on buffers: stdin, stdout, stderr.
func Test() (*IOStreams, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) {
	in, out, errOut := &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

// IsStdoutTTY reports whether stdout is an interactive terminal.
func (s *IOStreams) IsStdoutTTY() bool { return s.outTTY }

// IsStdinTTY reports whether stdin is an interactive terminal.
func (s *IOStreams) IsStdinTTY() bool { return s.inTTY }

// SetStdoutTTY overrides terminal detection (tests).
func (s *IOStreams) SetStdoutTTY(v bool) { s.outTTY = v }

// SetStdinTTY overrides terminal detection (tests).
func (s *IOStreams) SetStdinTTY(v bool) { s.inTTY = v }
