package kubernetes

import (
	"fmt"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// States a node's pod is in, in the words of provider.JobStates.
const (
	StatePending   = "PENDING"
	StateRunning   = "RUNNING"
	StateCompleted = "COMPLETED"
	StateFailed    = "FAILED"
	// StatePreempted: the pod was evicted, preempted, lost with its node
	// or deleted by someone else; its run restarts like a preempted one.
	StatePreempted = "PREEMPTED"
	StateTimeout   = "TIMEOUT"
)

// PodState says what a node's pod is doing and why: for a pending pod,
// what it waits for (the scheduler's "0/3 nodes are available: 3
// Insufficient nvidia.com/gpu.", an image pull error); for an ended one,
// how it ended.
func PodState(p *corev1.Pod) (state, reason string) {
	if p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
		if c := condition(p, corev1.DisruptionTarget); c != nil && c.Status == corev1.ConditionTrue {
			return StatePreempted, disruption(c)
		}
		return StatePreempted, "its pod was deleted"
	}
	switch p.Status.Phase {
	case corev1.PodRunning:
		return StateRunning, ""
	case corev1.PodSucceeded:
		return StateCompleted, ""
	case corev1.PodFailed:
		return failedState(p)
	}
	// Pending (or Unknown: the node stopped reporting).
	if c := condition(p, corev1.PodScheduled); c != nil && c.Status == corev1.ConditionFalse {
		return StatePending, join(c.Reason, c.Message)
	}
	for _, s := range p.Status.InitContainerStatuses {
		if w := s.State.Waiting; w != nil && w.Reason != "" && w.Reason != "PodInitializing" {
			return StatePending, join(w.Reason, w.Message)
		}
		if s.State.Running != nil {
			return StatePending, "fetching the Paddock agent (init container " + s.Name + ")"
		}
	}
	for _, s := range p.Status.ContainerStatuses {
		if w := s.State.Waiting; w != nil && w.Reason != "" {
			return StatePending, join(w.Reason, w.Message)
		}
	}
	if p.Spec.NodeName != "" {
		return StatePending, "ContainerCreating: scheduled on node " + p.Spec.NodeName
	}
	return StatePending, "waiting to be scheduled"
}

// failedState is how a failed pod ended: a disruption (evicted,
// preempted, its node lost or shut down), its deadline, or a container
// that exited with an error.
func failedState(p *corev1.Pod) (string, string) {
	if c := condition(p, corev1.DisruptionTarget); c != nil && c.Status == corev1.ConditionTrue {
		return StatePreempted, disruption(c)
	}
	switch p.Status.Reason {
	case "Evicted", "Preempting", "NodeLost", "Shutdown", "Terminated", "NodeShutdown", "UnexpectedAdmissionError":
		return StatePreempted, "its pod was " + strings.ToLower(pastTense(p.Status.Reason)) + suffix(p.Status.Message)
	case "DeadlineExceeded":
		return StateTimeout, "its pod ran past its active deadline" + suffix(p.Status.Message)
	}
	for _, group := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, s := range group {
			if t := s.State.Terminated; t != nil && t.ExitCode != 0 {
				what := "container " + s.Name
				if s.Name == InitContainer {
					what = "init container " + s.Name + " (which fetches the agent)"
				}
				msg := fmt.Sprintf("%s exited with code %d", what, t.ExitCode)
				if t.Reason != "" && t.Reason != "Error" {
					msg += " (" + t.Reason + ")"
				}
				return StateFailed, msg + suffix(lastLine(t.Message))
			}
		}
	}
	if p.Status.Reason != "" || p.Status.Message != "" {
		return StateFailed, "its pod failed" + suffix(join(p.Status.Reason, p.Status.Message))
	}
	return StateFailed, "its pod failed"
}

// JobFailure says why a Job failed as a whole (its deadline, a failed
// pod), or "" while it has not.
func JobFailure(j *batchv1.Job) (state, reason string) {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobFailed || c.Type == batchv1.JobFailureTarget) && c.Status == corev1.ConditionTrue {
			if c.Reason == batchv1.JobReasonDeadlineExceeded {
				return StateTimeout, "its Job ran past its deadline"
			}
			return StateFailed, "its Job failed" + suffix(join(c.Reason, c.Message))
		}
	}
	return "", ""
}

func condition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// disruption describes a DisruptionTarget condition (why Kubernetes is
// taking the pod away).
func disruption(c *corev1.PodCondition) string {
	what := map[string]string{
		"PreemptionByScheduler":    "preempted by the scheduler for a higher-priority pod",
		"DeletionByTaintManager":   "evicted from its node (a NoExecute taint: the node is lost or being drained)",
		"EvictionByEvictionAPI":    "evicted (the Eviction API: a drain or a disruption)",
		"DeletionByPodGC":          "removed because its node is gone",
		"TerminationByKubelet":     "evicted by its node's kubelet",
		"DeletionByNodeLifecycle":  "removed because its node is lost",
		"EvictionByNodeLifecycle":  "evicted because its node is lost",
		"DisruptionByNodeShutdown": "stopped because its node shut down",
	}[c.Reason]
	if what == "" {
		what = "disrupted (" + c.Reason + ")"
	}
	return "its pod was " + what + suffix(c.Message)
}

func pastTense(reason string) string {
	switch reason {
	case "Evicted", "Terminated":
		return reason
	case "Preempting":
		return "Preempted"
	case "NodeLost":
		return "lost with its node"
	case "Shutdown", "NodeShutdown":
		return "stopped by a node shutdown"
	}
	return "rejected by its node (" + reason + ")"
}

func join(reason, msg string) string {
	switch {
	case reason == "":
		return msg
	case msg == "":
		return reason
	}
	return reason + ": " + msg
}

func suffix(msg string) string {
	if msg = strings.TrimSpace(msg); msg == "" {
		return ""
	}
	return ": " + msg
}

// lastLine is the last non-empty line of a termination message (with
// FallbackToLogsOnError, the end of the container's log).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
