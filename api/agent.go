package api

import "unicode/utf8"

// The node agent's protocol. An agent connects out to the server, so it
// works behind NAT, in a Slurm allocation or in a pod: it registers, then
// long-polls for work (each poll is also its heartbeat and tells the server
// which attempts it is running), streams logs, uploads outputs and reports
// status. Every report names the attempt; the server refuses reports for an
// attempt that is no longer current (HTTP 409), and the agent then stops it.

// AgentHello is what an agent reports about its node when it starts.
type AgentHello struct {
	Hostname string       `json:"hostname"`
	Cores    float64      `json:"cores"`
	MemoryGB float64      `json:"memory_gb"`
	GPUs     []GPUInfo    `json:"gpus"`
	Version  string       `json:"version"`
	Address  string       `json:"address,omitempty"`
	SSH      string       `json:"ssh,omitempty"` // host:port of the node\'s SSH endpoint, when it serves one
	Active   []AttemptRef `json:"active"`
}

// GPUInfo is one GPU as nvidia-smi reports it.
type GPUInfo struct {
	Index    int    `json:"index"`
	Name     string `json:"name"`
	UUID     string `json:"uuid,omitempty"`
	MemoryMB int    `json:"memory_mb,omitempty"`
}

// AgentNode is the server's answer to a hello.
type AgentNode struct {
	NodeID  string `json:"node_id"`
	Compute string `json:"compute"`
}

// AttemptRef names one attempt of one run.
type AttemptRef struct {
	RunID   string `json:"run_id"`
	Attempt int    `json:"attempt"`
}

// AgentPoll is the body of a poll: what the agent is running, and how long
// the server may hold the request when there is nothing to do.
type AgentPoll struct {
	Active []AttemptRef `json:"active"`
	WaitMS int          `json:"wait_ms"`
	// SSHSessions is how many SSH sessions are open on the node.
	SSHSessions int `json:"ssh_sessions,omitempty"`
}

// AgentWork is the answer to a poll.
type AgentWork struct {
	Assignments []Assignment  `json:"assignments,omitempty"`
	Cancel      []CancelOrder `json:"cancel,omitempty"`
	// Stale attempts are no longer current: the agent stops them and
	// reports nothing more for them.
	Stale []AttemptRef `json:"stale,omitempty"`
	// Servers, from a workspace served by several replicas, are their
	// URLs: the agent tries the next when one cannot be reached.
	Servers []string `json:"servers,omitempty"`
}

// Assignment tells an agent to run one attempt of a run.
type Assignment struct {
	RunID     string `json:"run_id"`
	Attempt   int    `json:"attempt"`
	Workspace string `json:"workspace"`
	// User is who submitted the run; runs of different users execute as
	// different OS users where the agent can make them.
	User                  string            `json:"user,omitempty"`
	Command               []string          `json:"command"`
	Env                   map[string]string `json:"env"` // the user's env plus PADDOCK_* (run token included)
	Source                string            `json:"source,omitempty"`
	Environment           Environment       `json:"environment"`
	Resources             Resources         `json:"resources"`
	GPUIndices            []int             `json:"gpu_indices,omitempty"`
	MaxRunDurationSeconds int64             `json:"max_run_duration_seconds,omitempty"`
	// Identities names the managed identities the run holds: the agent
	// serves their credentials to the run (and to no other) at
	// PADDOCK_IDENTITY_ENDPOINT while the attempt runs.
	Identities []string `json:"identities,omitempty"`
	// NodeRank is this node's rank in a multi-node run (0 otherwise); only
	// rank 0 uploads outputs.
	NodeRank int `json:"node_rank"`
	// Hosts are the addresses of the attempt's nodes, rank 0 first
	// (multi-node runs only).
	Hosts []string `json:"hosts,omitempty"`
	// Distribution and ProcessCountPerNode say how the agent starts the
	// command: ProcessCountPerNode processes on each node, each with its
	// LOCAL_RANK and RANK; with distribution mpi, through mpirun on rank 0,
	// which reaches the other nodes through their agents.
	Distribution        string `json:"distribution,omitempty"`
	ProcessCountPerNode int    `json:"process_count_per_node,omitempty"`
	// RestoreOutputs asks the agent to put the run's stored outputs (the
	// checkpoints of an earlier attempt) into ./outputs before it starts.
	RestoreOutputs bool `json:"restore_outputs,omitempty"`
	// LogAck is the last log line of this attempt the server has stored;
	// a redelivered assignment resumes sending after it.
	LogAck int64 `json:"log_ack"`
}

// CancelOrder tells an agent to stop an attempt.
type CancelOrder struct {
	RunID   string `json:"run_id"`
	Attempt int    `json:"attempt"`
	Reason  string `json:"reason"`
}

// AttemptReport is the body an agent posts when an attempt changes state.
type AttemptReport struct {
	Status   RunStatus    `json:"status"`
	ExitCode *int         `json:"exit_code,omitempty"`
	Reason   string       `json:"reason,omitempty"`
	Error    string       `json:"error,omitempty"`
	Outputs  []OutputFile `json:"outputs,omitempty"`
}

// AgentLogs is a batch of log lines of one attempt.
type AgentLogs struct {
	Lines []AgentLogLine `json:"lines"`
}

// Limits of one log batch. The server refuses a larger batch body with 413
// TooLarge before reading it, so an agent takes LogBatchLen lines at a time.
const (
	MaxLogBatchBytes = 4 << 20  // the JSON body of one batch
	MaxLogBatchLines = 10000    // lines in one batch
	MaxLogLineBytes  = 64 << 10 // the text of one line; agents split longer lines
)

// LogBatchLen returns how many of lines, from the first, fit in one batch:
// at most MaxLogBatchLines, and a JSON body (as encoding/json writes it) of
// at most MaxLogBatchBytes. It counts an upper bound of each line's encoded
// size without encoding it. It returns 0 only for no lines or a first line
// that alone is too large, which cannot happen with lines of at most
// MaxLogLineBytes.
func LogBatchLen(lines []AgentLogLine) int {
	size := len(`{"lines":[]}`)
	for i, l := range lines {
		// {"n":N,"stream":S,"t":T,"text":X}, with a comma before all but the first.
		size += len(`,{"n":,"stream":,"t":,"text":}`) + 2*20 + jsonStringBound(l.Stream) + jsonStringBound(l.Text)
		if i == MaxLogBatchLines || size > MaxLogBatchBytes {
			return i
		}
	}
	return len(lines)
}

// jsonStringBound is at least the length of s encoded as a JSON string by
// encoding/json: quotes, escapes (at most 6 bytes: \u00XX, and \ufffd for
// each byte of invalid UTF-8, \u2028 and \u2029 included) and UTF-8.
func jsonStringBound(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				n += 6
			case c == '"' || c == '\\':
				n += 2
			default:
				n++
			}
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && w == 1, r == '\u2028', r == '\u2029':
			n += 6
		default:
			n += w
		}
		i += w
	}
	return n
}

// AgentLogLine is one line with the agent's line number within the attempt.
type AgentLogLine struct {
	N      int64  `json:"n"`
	Stream string `json:"stream"`
	TimeNS int64  `json:"t"`
	Text   string `json:"text"`
}

// LogAckBody is the answer to a log batch: the last line stored.
type LogAckBody struct {
	Ack int64 `json:"ack"`
}
